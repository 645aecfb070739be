# DICOM de-identification (PS3.15 Annex E) per series, and the quarantine list.


rule deid_series:
    """De-identify one series (every element at every depth, UIDs remapped, dates shifted);
    also collect the raw series' identifying values as the audit's needles (private)."""
    input:
        manifest=series_manifest,
    output:
        dicom=directory(L.work_dir("deid")),
        report=L.result("deid"),
        needles=L.result("needles"),
    log:
        L.log("deid_series", L.job()),
    benchmark:
        L.benchmark("deid_series", L.job())
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
        quasi=QUASI_ARG,
    shell:
        "neurodeid deid {input.manifest:q} --out-dir {output.dicom:q} --report {output.report:q}"
        " --subject {wildcards.subject} --session {wildcards.session}"
        " --options {params.options} {params.key} --needles-out {output.needles:q}"
        " --min-length 2 --quasi {params.quasi} > {log:q} 2>&1"


rule quarantine:
    """One private list of every input file that did not make it, with stage and reason."""
    input:
        index=L.private_file("index/quarantine.tsv"),
        deid=deid_reports(),
        redact=redaction_results(),
    output:
        L.private_file("quarantine.tsv"),
    log:
        L.log("quarantine"),
    benchmark:
        L.benchmark("quarantine")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "neurodeid quarantine {input.index:q} --deid-reports {input.deid:q}"
        " --redact-results {input.redact:q} --out {output:q} > {log:q} 2>&1"
