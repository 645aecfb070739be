# Defacing of converted head images: the face is removed, the brain never; QC
# pictures for the reviewer (private: the "before" shows the face).


rule deface_series:
    """Deface every converted image of one head series (method and parameters from config)."""
    input:
        L.work_dir("convert"),
    output:
        images=directory(L.work_dir("deface")),
        result=L.result("deface"),
        qc_dir=directory(L.qc_dir("deface")),
        triplanar=report(
            L.qc_picture("deface", "triplanar"),
            caption="../report/deface_triplanar.rst",
            category="Defacing",
            subcategory="sub-{subject}",
            labels={
                "session": "ses-{session}",
                "series": "{series}",
                "view": "triplanar",
            },
        ),
        render=report(
            L.qc_picture("deface", "render"),
            caption="../report/deface_render.rst",
            category="Defacing",
            subcategory="sub-{subject}",
            labels={
                "session": "ses-{session}",
                "series": "{series}",
                "view": "3D render",
            },
        ),
        faces=report(
            L.qc_picture("deface", "faces"),
            caption="../report/deface_faces.rst",
            category="Defacing",
            subcategory="sub-{subject}",
            labels={
                "session": "ses-{session}",
                "series": "{series}",
                "view": "face detector",
            },
        ),
    log:
        L.log("deface_series", L.job()),
    benchmark:
        L.benchmark("deface_series", L.job())
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        method=config["deface"]["method"],
        params=DEFACE_PARAMS_JSON,
    shell:
        "neurodeid deface-series {input:q} --out-dir {output.images:q} --result {output.result:q}"
        " --qc-dir {output.qc_dir:q} --triplanar {output.triplanar:q} --render {output.render:q}"
        " --faces {output.faces:q}"
        " --method {params.method} --params-json {params.params:q} > {log:q} 2>&1"


if INPUT_BIDS:

    # (a DICOM input's series are face-checked in their series job: deid_series, deid.smk)
    rule face_check_series:
        """Look for a face on surface renders of every imported image of a series not planned for defacing."""
        input:
            L.work_dir("convert"),
        output:
            result=L.result("face"),
            qc_dir=directory(L.qc_dir("face")),
        log:
            L.log("face_check_series", L.job()),
        benchmark:
            L.benchmark("face_check_series", L.job())
        group:
            "subject"
        conda:
            "../envs/neurodeid.yaml"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=10,
        shell:
            "neurodeid face-check-series {input:q} --result {output.result:q}"
            " --qc-dir {output.qc_dir:q} > {log:q} 2>&1"


rule deface_dicom:
    """The de-identified DICOM series again, with the defaced pixels (new keyed UIDs, marked derived)."""
    input:
        deid=pixel_source,
        converted=L.work_dir("convert"),
        defaced=L.work_dir("deface"),
        morphometry=L.work_dir("morphometry"),
    output:
        dicom=directory(L.work_dir("deface_dicom")),
        result=L.result("deface_dicom"),
    log:
        L.log("deface_dicom", L.job()),
    benchmark:
        L.benchmark("deface_dicom", L.job())
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        key=KEY_ARGS,
        key_fingerprint=KEY_FINGERPRINT,
    shell:
        "neurodeid deface-dicom {input.deid:q} {input.converted:q} {input.defaced:q}"
        " --morphometry-dir {input.morphometry:q} --out-dir {output.dicom:q}"
        " --result {output.result:q} {params.key} > {log:q} 2>&1"
