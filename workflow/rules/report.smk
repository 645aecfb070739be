# The review report: a summary page ("May I press send?"), the tables a reviewer
# checks, and one page per subject, all as `report()` outputs. Build the HTML with
#   snakemake --cores 2 && snakemake --report results/private/report.html
# It stays in results/private/: it names raw file paths and shows original pixels.
# Input functions (report_summary_inputs, deface_results, morphometry_summary) live in
# common.smk.


rule report_summary:
    """Summary page, quarantine / withheld / audit tables and one page per subject (private)."""
    input:
        unpack(report_summary_inputs),
    output:
        summary=report(
            L.private_file("report/summary.html"),
            caption="../report/summary.rst",
            category="0 Summary",
            labels={"page": "1 summary"},
        ),
        rst=L.private_file("report/summary_counts.rst"),
        withheld=report(
            L.private_file("report/withheld.html"),
            caption="../report/withheld.rst",
            category="0 Summary",
            labels={"page": "2 withheld and unmatched series"},
        ),
        quarantine=report(
            L.private_file("report/quarantine.html"),
            caption="../report/quarantine.rst",
            category="0 Summary",
            labels={"page": "3 quarantine"},
        ),
        audit=report(
            L.private_file("report/audit.html"),
            caption="../report/audit.rst",
            category="0 Summary",
            labels={"page": "4 release audit"},
        ),
        review=report(
            L.private_file("report/review.html"),
            caption="../report/review.rst",
            category="0 Summary",
            labels={"page": "5 review decisions and release changelog"},
        ),
        subjects=report(
            directory(L.private_file("report/subjects")),
            patterns=["sub-{subject}.html"],
            caption="../report/subject.rst",
            category="1 Subjects",
            subcategory="sub-{subject}",
            labels={"subject": "sub-{subject}", "page": "series overview"},
        ),
    log:
        L.log("report_summary"),
    benchmark:
        L.benchmark("report_summary")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        private_dir=lambda w, input: Path(input.index).parent,
        out_dir=lambda w, output: Path(output.summary).parent,
        key_fingerprint=KEY_FINGERPRINT,
    shell:
        "neurodeid report-summary {params.private_dir:q} --out-dir {params.out_dir:q}"
        " --subjects-dir {output.subjects:q} --key-fingerprint {params.key_fingerprint}"
        " > {log:q} 2>&1"
