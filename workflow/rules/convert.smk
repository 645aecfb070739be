# Conversion of de-identified DICOM to NIfTI + sanitised sidecar, or, for a BIDS input
# (config input_bids), the import of its images with the same sanitising (named and
# released per subject by release_subject, release.smk).


if INPUT_BIDS:

    # the import also collects the needles: it, not deid_series, makes them here
    ruleorder: import_series > deid_series

    rule import_series:
        """Import one image of the BIDS input: NIfTI header text fixed, extensions removed,
        sidecar from the allow-list; the identifying values of the input collected (private).
        """
        input:
            manifest=series_manifest,
        output:
            images=directory(L.work_dir("convert")),
            result=L.convert_result(),
            needles=L.result("needles"),
        log:
            L.log("import_series", L.job()),
        benchmark:
            L.benchmark("import_series", L.job())
        group:
            "subject"
        conda:
            "../envs/neurodeid.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        params:
            bids_dir=INPUT_BIDS,
        shell:
            "neurodeid import-bids {input.manifest:q} --bids-dir {params.bids_dir:q}"
            " --out-dir {output.images:q} --result {output.result:q}"
            " --needles-out {output.needles:q} > {log:q} 2>&1"

else:

    rule convert_series:
        """dcm2niix on one de-identified series read for text; sidecar from an allow-list; geometry
        checked; then, for a series not planned for defacing, a face looked for on surface renders
        of every converted image, in this job (a series planned for defacing: deface.smk).
        """
        input:
            pixel_source,
        output:
            images=directory(L.work_dir("convert")),
            result=L.convert_result(),
            face=L.result("face"),
        log:
            L.log("convert_series", L.job()),
        benchmark:
            L.benchmark("convert_series", L.job())
        group:
            "subject"
        conda:
            "../envs/neurodeid.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=40,
        params:
            dcm2niix=config["convert"]["dcm2niix"],
            face=face_check,
        shell:
            "neurodeid convert {input:q} --out-dir {output.images:q} --result {output.result:q}"
            " --dcm2niix={params.dcm2niix:q} --face-result {output.face:q} {params.face}"
            " > {log:q} 2>&1"
