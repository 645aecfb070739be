# Assembling the shareable release folder.


rule release_skeleton:
    """BIDS skeleton: dataset_description.json, participants.tsv (pseudonyms), README, .bidsignore."""
    input:
        subjects=f"{PRIVATE}/index/subjects.tsv",
    output:
        description=f"{RELEASE}/dataset_description.json",
        participants=f"{RELEASE}/participants.tsv",
        readme=f"{RELEASE}/README",
        bidsignore=f"{RELEASE}/.bidsignore",
    log:
        f"{LOGS}/release_skeleton.log",
    benchmark:
        f"{BENCH}/release_skeleton.tsv"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        release_dir=lambda w, output: Path(output.description).parent,
        name=config["dataset"]["name"],
        license=config["dataset"].get("license", ""),
        authors=" ".join(shlex.quote(a) for a in config["dataset"].get("authors", [])),
        options=DEID_OPTIONS,
    shell:
        "neurodeid release-skeleton {input.subjects:q} --release-dir {params.release_dir:q}"
        " --name {params.name:q} --license {params.license:q} --authors {params.authors}"
        " --options {params.options} > {log:q} 2>&1"
