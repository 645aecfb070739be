# Assembling the shareable release folder.


rule release_skeleton:
    """BIDS skeleton: dataset_description.json, participants.tsv (pseudonyms), README, .bidsignore."""
    input:
        subjects=L.private_file("index/subjects.tsv"),
        listings=released_listings(),
    output:
        description=L.release_file("dataset_description.json"),
        participants=L.release_file("participants.tsv"),
        readme=L.release_file("README"),
        bidsignore=L.release_file(".bidsignore"),
    log:
        L.log("release_skeleton"),
    benchmark:
        L.benchmark("release_skeleton")
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
        plan=L.subject_file("plan"),
        heuristics=config["convert"]["heuristics"],
        decisions=subject_decisions,
        sources=subject_release_inputs,
    output:
        listing=L.subject_file("released"),
        applied=L.subject_file("applied"),
        names=L.subject_file("names"),
    log:
        L.log("release_subject", L.job(session=None)),
    benchmark:
        L.benchmark("release_subject", L.job(session=None))
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        work_dir=L.work,
        private_dir=lambda w, input: Path(input.plan).parent.parent,
        release_dir=L.release,
        tmp_dir=L.tmp,
        nrrd="--nrrd" if config["convert"]["nrrd"] else "--no-nrrd",
    shell:
        "neurodeid release-subject {input.plan:q} --work-dir {params.work_dir:q}"
        " --private-dir {params.private_dir:q} --release-dir {params.release_dir:q}"
        " --tmp-dir {params.tmp_dir:q} --heuristics {input.heuristics:q}"
        " --decisions {input.decisions:q} --names {output.names:q} --listing {output.listing:q}"
        " --applied {output.applied:q} {params.nrrd} > {log:q} 2>&1"
