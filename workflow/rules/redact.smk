# Burned-in text: every series is read (2D: every image and frame; volumes: slices
# screened) by region rules and two readers, cleaned, and proved clean by a re-read
# before conversion or the release may use its pixels.


rule redact_series:
    """Read one de-identified series for burned-in text and redact it; FAIL images stay out."""
    input:
        dicom=L.work_dir("deid"),
        needles=L.result("needles"),
    output:
        images=directory(L.work_dir("redact")),
        result=L.result("redact"),
        qc_dir=directory(L.qc_dir("redact")),
        qc=report(
            L.qc_picture("redact"),
            caption="../report/redact.rst",
            category="Burned-in text",
            subcategory="sub-{subject}",
            # one label: Snakemake's report tabulates the last label against the
            # others, and a subject's series in different sessions left empty cells
            labels={"series": "ses-{session} {series}"},
        ),
    log:
        L.log("redact_series", L.job()),
    benchmark:
        L.benchmark("redact_series", L.job())
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=REDACT_JSON,
        mode=text_mode,
        faces=face_screen,
    shell:
        "neurodeid redact {input.dicom:q} --out-dir {output.images:q} --result {output.result:q}"
        " --needles {input.needles:q} --qc-dir {output.qc_dir:q} --qc {output.qc:q}"
        " --mode {params.mode} {params.faces} --config-json {params.config:q} > {log:q} 2>&1"


rule redact_image:
    """A plain 2D image listed in config (redact.images): redacted, OCR-verified, released on PASS."""
    input:
        image=lambda w: REDACT_IMAGES[int(w.n)],
        needles=L.private_file("needles/paths.json"),
    output:
        result=L.image_file("result"),
        qc=report(
            L.image_file("qc"),
            caption="../report/redact.rst",
            category="Burned-in text",
            subcategory="All subjects",
            labels={"image": "listed image {n}"},
        ),
    log:
        L.log("redact_image", "image{n}"),
    benchmark:
        L.benchmark("redact_image", "image{n}")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=REDACT_JSON,
        dst=lambda w: L.released_image(w.n, image_suffix(w)),
    shell:
        "neurodeid redact-image {input.image:q} --release-out {params.dst:q} --result {output.result:q}"
        " --qc {output.qc:q} --needles {input.needles:q} --config-json {params.config:q} > {log:q} 2>&1"
