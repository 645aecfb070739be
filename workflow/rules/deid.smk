# One job per series before defacing (issue 21: the workflow's fixed cost grows with its
# job count): DICOM de-identification (PS3.15 Annex E) and the audit's needles, then with
# redact.enabled the text stage (redact.smk), then the conversion and the face check
# (convert.smk). A BIDS input is imported instead (convert.smk). Also the quarantine list.


if not INPUT_BIDS and config["redact"]["enabled"]:

    rule deid_series:
        """One series: de-identified (every element at every depth, UIDs remapped, dates
        shifted), the raw series' identifying values collected as the audit's needles
        (private), the de-identified files read for burned-in text and redacted (FAIL images
        stay out), then what is left converted to NIfTI and looked at for a face (a series
        the plan does not convert: an empty folder and records that say so)."""
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
            converted=directory(L.work_dir("convert")),
            convert_result=L.convert_result(),
            face=L.result("face"),
            face_qc=directory(L.qc_dir("face")),
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
            mem_mb=4000,
            runtime=90,
        params:
            options=DEID_OPTIONS,
            key=KEY_ARGS,
            key_fingerprint=KEY_FINGERPRINT,
            quasi=QUASI_ARG,
            config=REDACT_JSON,
            mode=text_mode,
            faces=face_screen,
            dcm2niix=config["convert"]["dcm2niix"],
            convert=convert_args,
        shell:
            "neurodeid deid {input.manifest:q} --out-dir {output.dicom:q} --report {output.report:q}"
            " --subject {wildcards.subject} --session {wildcards.session}"
            " --options {params.options} {params.key} --needles-out {output.needles:q}"
            " --min-length 2 --quasi {params.quasi}"
            " --text-out-dir {output.images:q} --text-result {output.result:q}"
            " --text-qc-dir {output.qc_dir:q} --text-qc {output.qc:q}"
            " --text-mode {params.mode} {params.faces} --text-config-json {params.config:q}"
            " --convert-out-dir {output.converted:q} --convert-result {output.convert_result:q}"
            " --face-result {output.face:q} --face-qc-dir {output.face_qc:q}"
            " --dcm2niix={params.dcm2niix:q} {params.convert}"
            " > {log:q} 2>&1"

elif not INPUT_BIDS:

    rule deid_series:
        """One series: de-identified (every element at every depth, UIDs remapped, dates
        shifted), the raw series' identifying values collected as the audit's needles
        (private), then converted to NIfTI and looked at for a face (redaction is off: only
        series the plan converts without reading their pixels for text)."""
        input:
            manifest=series_manifest,
        output:
            dicom=directory(L.work_dir("deid")),
            report=L.result("deid"),
            needles=L.result("needles"),
            converted=directory(L.work_dir("convert")),
            convert_result=L.convert_result(),
            face=L.result("face"),
            face_qc=directory(L.qc_dir("face")),
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
            mem_mb=4000,
            runtime=60,
        params:
            options=DEID_OPTIONS,
            key=KEY_ARGS,
            key_fingerprint=KEY_FINGERPRINT,
            quasi=QUASI_ARG,
            dcm2niix=config["convert"]["dcm2niix"],
            convert=convert_args,
        shell:
            "neurodeid deid {input.manifest:q} --out-dir {output.dicom:q} --report {output.report:q}"
            " --subject {wildcards.subject} --session {wildcards.session}"
            " --options {params.options} {params.key} --needles-out {output.needles:q}"
            " --min-length 2 --quasi {params.quasi}"
            " --convert-out-dir {output.converted:q} --convert-result {output.convert_result:q}"
            " --face-result {output.face:q} --face-qc-dir {output.face_qc:q}"
            " --dcm2niix={params.dcm2niix:q} {params.convert}"
            " > {log:q} 2>&1"


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
