# The import of a BIDS input's images (config input_bids) with the sanitising of a
# conversion (named and released per subject by release_subject, release.smk). A DICOM
# input's series are converted in their one series job (rule deid_series, deid.smk:
# `neurodeid deid --convert-out-dir`).


if INPUT_BIDS:

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
