# The index itself runs when the workflow is parsed (common.smk). The needles of each
# series' raw headers are collected by deid_series (same files, same job); this rule
# adds the words of the raw file and folder names.


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
