# DICOM de-identification (PS3.15 Annex E) per series, and the quarantine list. With
# redact.enabled the text stage (redact.smk) runs in the same job: one job per series, not
# two (issue 21: the workflow's fixed cost grows with its job count).


if config["redact"]["enabled"]:

    rule deid_series:
        """De-identify one series (every element at every depth, UIDs remapped, dates shifted);
        also collect the raw series' identifying values as the audit's needles (private); then
        read the de-identified files for burned-in text and redact them (redact.smk: the text
        stage, in this job); FAIL images stay out."""
        input:
            manifest=series_manifest,
        output:
            dicom=directory(L.work_dir("deid")),
            report=L.result("deid"),
            needles=L.result("needles"),
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
            runtime=60,
        params:
            options=DEID_OPTIONS,
            key=KEY_ARGS,
            key_fingerprint=KEY_FINGERPRINT,
            quasi=QUASI_ARG,
            config=REDACT_JSON,
            mode=text_mode,
            faces=face_screen,
        shell:
            "neurodeid deid {input.manifest:q} --out-dir {output.dicom:q} --report {output.report:q}"
            " --subject {wildcards.subject} --session {wildcards.session}"
            " --options {params.options} {params.key} --needles-out {output.needles:q}"
            " --min-length 2 --quasi {params.quasi}"
            " --text-out-dir {output.images:q} --text-result {output.result:q}"
            " --text-qc-dir {output.qc_dir:q} --text-qc {output.qc:q}"
            " --text-mode {params.mode} {params.faces} --text-config-json {params.config:q}"
            " > {log:q} 2>&1"

else:

    rule deid_series:
        """De-identify one series (every element at every depth, UIDs remapped, dates shifted);
        also collect the raw series' identifying values as the audit's needles (private).
        """
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
