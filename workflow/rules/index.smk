# The index itself runs when the workflow is parsed (common.smk); these rules
# turn its private files into the needle lists of the release audit.


rule path_needles:
    """Words of the raw file and folder names, as audit needles (private)."""
    input:
        f"{PRIVATE}/index/paths.tsv",
    output:
        f"{PRIVATE}/needles/paths.json",
    log:
        f"{LOGS}/path_needles.log",
    benchmark:
        f"{BENCH}/path_needles.tsv"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        min_length=config["audit"]["min_needle_length"],
    shell:
        "neurodeid path-needles {input:q} --out {output:q}"
        " --min-length {params.min_length} > {log:q} 2>&1"


rule series_needles:
    """Identifying values of one raw series' headers, as audit needles (private)."""
    input:
        manifest=series_manifest,
    output:
        f"{PRIVATE}/needles/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/series_needles/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/series_needles/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        options=DEID_OPTIONS,
        min_length=config["audit"]["min_needle_length"],
    shell:
        "neurodeid needles {input.manifest:q} --out {output:q}"
        " --options {params.options} --min-length {params.min_length} > {log:q} 2>&1"
