# Defacing of converted head images: the face is removed, the brain never; QC
# pictures for the reviewer (private: the "before" shows the face).


rule deface_series:
    """Deface every converted image of one head series (method and parameters from config)."""
    input:
        f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}",
    output:
        images=directory(f"{WORK}/deface/sub-{{subject}}/ses-{{session}}/{{series}}"),
        result=f"{PRIVATE}/deface/sub-{{subject}}/ses-{{session}}/{{series}}.json",
        qc_dir=directory(
            f"{PRIVATE}/qc/deface/sub-{{subject}}/ses-{{session}}/{{series}}"
        ),
        triplanar=report(
            f"{PRIVATE}/qc/deface/sub-{{subject}}_ses-{{session}}_{{series}}_triplanar.png",
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
            f"{PRIVATE}/qc/deface/sub-{{subject}}_ses-{{session}}_{{series}}_render.png",
            caption="../report/deface_render.rst",
            category="Defacing",
            subcategory="sub-{subject}",
            labels={
                "session": "ses-{session}",
                "series": "{series}",
                "view": "3D render",
            },
        ),
    log:
        f"{LOGS}/deface_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/deface_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
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
        " --method {params.method} --params-json {params.params:q} > {log:q} 2>&1"


rule face_check_series:
    """Look for a face on surface renders of every converted image of a series not planned for defacing."""
    input:
        f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}",
    output:
        f"{PRIVATE}/face/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/face_check_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/face_check_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "neurodeid face-check-series {input:q} --result {output:q} > {log:q} 2>&1"


rule deface_dicom:
    """The de-identified DICOM series again, with the defaced pixels (new keyed UIDs, marked derived)."""
    input:
        deid=pixel_source,
        converted=f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}",
        defaced=f"{WORK}/deface/sub-{{subject}}/ses-{{session}}/{{series}}",
        morphometry=f"{WORK}/morphometry/sub-{{subject}}/ses-{{session}}/{{series}}",
    output:
        dicom=directory(
            f"{WORK}/deface_dicom/sub-{{subject}}/ses-{{session}}/{{series}}"
        ),
        result=f"{PRIVATE}/deface_dicom/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/deface_dicom/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/deface_dicom/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
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
