# Assembling the shareable release folder.


rule release_skeleton:
    """BIDS skeleton: dataset_description.json, participants.tsv (pseudonyms), README, .bidsignore."""
    input:
        subjects=f"{PRIVATE}/index/subjects.tsv",
        listings=released_listings(),
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
        " --options {params.options} --listings {input.listings:q} > {log:q} 2>&1"


rule subject_done:
    """Join of one subject's jobs: on a cluster they run as one job (group "subject")."""
    input:
        subject_outputs,
    output:
        f"{PRIVATE}/done/sub-{{subject}}.ok",
    log:
        f"{LOGS}/subject_done/sub-{{subject}}.log",
    benchmark:
        f"{BENCH}/subject_done/sub-{{subject}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        "neurodeid done {output:q} {input:q} > {log:q} 2>&1"
