# The index itself runs when the workflow is parsed (common.smk). The needles of each
# series' raw headers are collected by deid_series (same files, same job); this rule
# adds the words of the raw file and folder names.


rule path_needles:
    """Words of the raw file and folder names, as audit needles (private)."""
    input:
        L.private_file("index/paths.tsv"),
    output:
        L.private_file("needles/paths.json"),
    log:
        L.log("path_needles"),
    benchmark:
        L.benchmark("path_needles")
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
