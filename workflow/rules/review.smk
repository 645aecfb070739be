# The review loop: the sheet a reviewer fills in, and the changelog of the release.
# The decisions themselves are read and split per session when the workflow is
# parsed (common.smk) and applied by the release jobs.


rule review_sheet:
    """One row per released or withheld item: automatic verdict, reasons, QC pictures (private)."""
    input:
        plan=L.private_file("release_plan.tsv"),
        names=bids_names(),
        deface=deface_results(),
        morphometry=morphometry_tables(),
        redact=redaction_results(),
        deface_dicom=deface_dicom_results(),
    output:
        REVIEW_SHEET,
    log:
        L.log("review_sheet"),
    benchmark:
        L.benchmark("review_sheet")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        private_dir=lambda w, input: Path(input.plan).parent,
    shell:
        "neurodeid review-sheet {params.private_dir:q} --out {output:q} > {log:q} 2>&1"


rule release_log:
    """Append to private/release_log.tsv the items that entered or left the release."""
    input:
        listings=released_listings(),
        applied=applied_decisions(),
        sheet=REVIEW_SHEET,
    output:
        state=L.private_file("review/release_state.tsv"),
    log:
        L.log("release_log"),
    benchmark:
        L.benchmark("release_log")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        # append-only, so not an output (Snakemake removes outputs before a job runs)
        log_tsv=lambda w, output: Path(output.state).parent.parent / "release_log.tsv",
    shell:
        "neurodeid release-log --listings {input.listings:q} --applied {input.applied:q}"
        " --sheet {input.sheet:q} --log {params.log_tsv:q} --state {output.state:q} > {log:q} 2>&1"
