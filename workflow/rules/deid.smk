# DICOM de-identification (PS3.15 Annex E) per series, and the release of the
# de-identified DICOM that carries no identifying pixels.


rule deid_series:
    """De-identify one series (every element at every depth, UIDs remapped, dates shifted);
    also collect the raw series' identifying values as the audit's needles (private)."""
    input:
        manifest=series_manifest,
    output:
        dicom=directory(f"{WORK}/deid/sub-{{subject}}/ses-{{session}}/{{series}}"),
        report=f"{PRIVATE}/deid/sub-{{subject}}/ses-{{session}}/{{series}}.tsv",
        needles=f"{PRIVATE}/needles/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/deid_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/deid_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        options=DEID_OPTIONS,
        key=KEY_ARGS,
        key_fingerprint=KEY_FINGERPRINT,
    shell:
        "neurodeid deid {input.manifest:q} --out-dir {output.dicom:q} --report {output.report:q}"
        " --subject {wildcards.subject} --session {wildcards.session}"
        " --options {params.options} {params.key} --needles-out {output.needles:q}"
        " --min-length 2 > {log:q} 2>&1"


rule release_dicom:
    """Copy a de-identified (and, for 2D images, redacted) series into release/sourcedata/dicom."""
    input:
        src=released_dicom_source,
        decisions=series_decisions,
    output:
        listing=f"{PRIVATE}/released/sourcedata/dicom/sub-{{subject}}/ses-{{session}}/{{series}}.tsv",
        applied=f"{PRIVATE}/review/applied/dicom/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/release_dicom/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/release_dicom/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        dst=lambda w: f"{RELEASE}/sourcedata/dicom/sub-{w.subject}/ses-{w.session}/{w.series}",
        release_root=RELEASE,
        tmp_dir=f"{WORK}/tmp",
    shell:
        "neurodeid release-dir {input.src:q} {params.dst:q} --release-root {params.release_root:q}"
        " --listing {output.listing:q} --tmp-dir {params.tmp_dir:q}"
        " --decisions {input.decisions:q} --applied {output.applied:q} > {log:q} 2>&1"


rule quarantine:
    """One private list of every input file that did not make it, with stage and reason."""
    input:
        index=f"{PRIVATE}/index/quarantine.tsv",
        deid=all_series(
            f"{PRIVATE}/deid/sub-{{subject}}/ses-{{session}}/{{series}}.tsv"
        ),
        redact=redaction_results(),
    output:
        f"{PRIVATE}/quarantine.tsv",
    log:
        f"{LOGS}/quarantine.log",
    benchmark:
        f"{BENCH}/quarantine.tsv"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "neurodeid quarantine {input.index:q} --deid-reports {input.deid:q}"
        " --redact-results {input.redact:q} --out {output:q} > {log:q} 2>&1"
