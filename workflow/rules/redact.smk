# Burned-in text: every series is read (2D: every image and frame; volumes: slices
# screened) by region rules and two readers, cleaned, and proved clean by a re-read
# before conversion or the release may use its pixels.


rule redact_series:
    """Read one de-identified series for burned-in text and redact it; FAIL images stay out."""
    input:
        dicom=f"{WORK}/deid/sub-{{subject}}/ses-{{session}}/{{series}}",
        needles=f"{PRIVATE}/needles/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    output:
        images=directory(f"{WORK}/redact/sub-{{subject}}/ses-{{session}}/{{series}}"),
        result=f"{PRIVATE}/redact/sub-{{subject}}/ses-{{session}}/{{series}}.json",
        qc_dir=directory(
            f"{PRIVATE}/qc/redact/sub-{{subject}}/ses-{{session}}/{{series}}"
        ),
        qc=report(
            f"{PRIVATE}/qc/redact/sub-{{subject}}_ses-{{session}}_{{series}}.png",
            caption="../report/redact.rst",
            category="Burned-in text",
            subcategory="sub-{subject}",
            # one label: Snakemake's report tabulates the last label against the
            # others, and a subject's series in different sessions left empty cells
            labels={"series": "ses-{session} {series}"},
        ),
    log:
        f"{LOGS}/redact_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/redact_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
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
    shell:
        "neurodeid redact {input.dicom:q} --out-dir {output.images:q} --result {output.result:q}"
        " --needles {input.needles:q} --qc-dir {output.qc_dir:q} --qc {output.qc:q}"
        " --mode {params.mode} --config-json {params.config:q} > {log:q} 2>&1"


rule redact_image:
    """A plain 2D image listed in config (redact.images): redacted, OCR-verified, released on PASS."""
    input:
        image=lambda w: REDACT_IMAGES[int(w.n)],
        needles=f"{PRIVATE}/needles/paths.json",
    output:
        result=f"{PRIVATE}/redact/images/image{{n}}.json",
        qc=report(
            f"{PRIVATE}/qc/redact/images/image{{n}}.png",
            caption="../report/redact.rst",
            category="Burned-in text",
            subcategory="All subjects",
            labels={"image": "listed image {n}"},
        ),
    log:
        f"{LOGS}/redact_image/image{{n}}.log",
    benchmark:
        f"{BENCH}/redact_image/image{{n}}.tsv"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=REDACT_JSON,
        dst=lambda w: f"{RELEASE}/sourcedata/images/image{w.n}{image_suffix(w)}",
    shell:
        "neurodeid redact-image {input.image:q} --release-out {params.dst:q} --result {output.result:q}"
        " --qc {output.qc:q} --needles {input.needles:q} --config-json {params.config:q} > {log:q} 2>&1"
