# Quasi-identifiers: after the release is assembled, the k-anonymity of its subjects over
# what the release keeps about them (age, sex, scanner, site, year, ...). Private.


rule quasi_report:
    """k per subject over the quasi-identifiers of config quasi, read from the released
    files; a table and a summary (private) and the report's quasi-identifier page."""
    input:
        release=get_release_files(),
    output:
        tsv=L.private_file("quasi/k_anonymity.tsv"),
        summary=L.private_file("quasi/k_anonymity.json"),
        page=report(
            L.private_file("report/quasi.html"),
            caption="../report/quasi.rst",
            category="0 Summary",
            labels={"page": "6 quasi-identifiers (k-anonymity)"},
        ),
    log:
        L.log("quasi_report"),
    benchmark:
        L.benchmark("quasi_report")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        release_dir=lambda w, input: Path(input.release[0]).parent,
        listings=lambda w, input: " ".join(
            shlex.quote(f)
            for f in input.release
            if f.startswith(L.private_file("released") + "/")
        ),
        identifiers=" ".join(QUASI_CONFIG.get("identifiers", nd_kanon.IDENTIFIERS)),
        k_min=QUASI_CONFIG.get("k_min", 5),
        quasi=QUASI_ARG,
        gate="--gate" if QUASI_CONFIG.get("gate", False) else "",
    shell:
        "neurodeid quasi-report {params.release_dir:q} --listings {params.listings}"
        " --identifiers {params.identifiers} --k-min {params.k_min} --quasi {params.quasi}"
        " {params.gate} --out-tsv {output.tsv:q} --out-json {output.summary:q}"
        " --out-html {output.page:q} > {log:q} 2>&1"


rule quasi_gate:
    """With quasi.gate on: fail the run when a subject's k is below k_min."""
    input:
        L.private_file("quasi/k_anonymity.json"),
    output:
        L.private_file("quasi.ok"),
    log:
        L.log("quasi_gate"),
    benchmark:
        L.benchmark("quasi_gate")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "neurodeid check-quasi {input:q} --out {output:q} 2>&1 | tee {log:q}"
