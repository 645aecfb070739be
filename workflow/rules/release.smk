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


rule release_subject:
    """Name one subject's images, apply the exclusions and the reviewer's decisions, and
    swap its BIDS sessions and DICOM series into the release (each folder atomically).
    """
    input:
        plan=f"{PRIVATE}/plan/sub-{{subject}}.json",
        heuristics=config["convert"]["heuristics"],
        decisions=subject_decisions,
        sources=subject_release_inputs,
    output:
        listing=f"{PRIVATE}/released/sub-{{subject}}.tsv",
        applied=f"{PRIVATE}/review/applied/sub-{{subject}}.json",
        names=f"{PRIVATE}/bids/sub-{{subject}}.names.json",
    log:
        f"{LOGS}/release_subject/sub-{{subject}}.log",
    benchmark:
        f"{BENCH}/release_subject/sub-{{subject}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        work_dir=WORK,
        private_dir=lambda w, input: Path(input.plan).parent.parent,
        release_dir=RELEASE,
        tmp_dir=f"{WORK}/tmp",
        nrrd="--nrrd" if config["convert"]["nrrd"] else "--no-nrrd",
    shell:
        "neurodeid release-subject {input.plan:q} --work-dir {params.work_dir:q}"
        " --private-dir {params.private_dir:q} --release-dir {params.release_dir:q}"
        " --tmp-dir {params.tmp_dir:q} --heuristics {input.heuristics:q}"
        " --decisions {input.decisions:q} --names {output.names:q} --listing {output.listing:q}"
        " --applied {output.applied:q} {params.nrrd} > {log:q} 2>&1"
