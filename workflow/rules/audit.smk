# The release audit: the last gate before `rule all` succeeds.


rule audit:
    """Scan every released byte and name for the raw data's identifying values."""
    input:
        needles=get_needle_files(),
        release=get_release_files(),
    output:
        L.private_file("audit.tsv"),
    log:
        L.log("audit"),
    benchmark:
        L.benchmark("audit")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1  # --set-threads audit=N: N forked workers (no gain measured on a shared 2-core VM)
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        release_dir=lambda w, input: Path(input.release[0]).parent,
        min_length=config["audit"]["min_needle_length"],
        allow=json.dumps(config["audit"].get("allow", []), sort_keys=True),
    shell:
        "neurodeid audit {params.release_dir:q} --needles {input.needles:q}"
        " --min-length {params.min_length} --allow-json {params.allow:q}"
        " --workers {threads} --out {output:q} > {log:q} 2>&1"


rule audit_gate:
    """Fail the run when the audit found anything (names files and attributes, never values)."""
    input:
        L.private_file("audit.tsv"),
    output:
        L.private_file("audit.ok"),
    log:
        L.log("audit_gate"),
    benchmark:
        L.benchmark("audit_gate")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "neurodeid check-audit {input:q} --out {output:q} 2>&1 | tee {log:q}"
