# Morphometry checks: the same brain extraction and tissue segmentation on the
# original and on the defaced image prove the brain was not harmed; a FAIL keeps
# the image out of the release.


rule morphometry_series:
    """Brain and tissue measures, original vs defaced, for every defaced image of a series."""
    input:
        converted=L.work_dir("convert"),
        defaced=L.work_dir("deface"),
        result=L.result("deface"),
    output:
        images=directory(L.work_dir("morphometry")),
        table=L.result("morphometry"),
    log:
        L.log("morphometry_series", L.job()),
    benchmark:
        L.benchmark("morphometry_series", L.job())
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        thresholds=MORPHOMETRY_JSON,
        label=lambda w: L.job(**series_ids(w)),
    shell:
        "neurodeid morphometry-series {input.converted:q} {input.defaced:q}"
        " --deface-result {input.result:q} --label {params.label}"
        " --out-dir {output.images:q} --out {output.table:q}"
        " --thresholds-json {params.thresholds:q} > {log:q} 2>&1"


rule morphometry_summary:
    """One table and one plot of the change per measure over every defaced image."""
    input:
        morphometry_tables(),
    output:
        table=report(
            L.private_file("morphometry/summary.tsv"),
            caption="../report/morphometry_table.rst",
            category="Morphometry",
            subcategory="All subjects",
            labels={"what": "table, every image"},
        ),
        plot=report(
            L.private_file("morphometry/summary.png"),
            caption="../report/morphometry_summary.rst",
            category="Morphometry",
            subcategory="All subjects",
            labels={"what": "change per measure"},
        ),
        failed=L.private_file("morphometry/failed.tsv"),
    log:
        L.log("morphometry_summary"),
    benchmark:
        L.benchmark("morphometry_summary")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        thresholds=MORPHOMETRY_JSON,
    shell:
        "neurodeid morphometry-summary {input:q} --out {output.table:q} --plot {output.plot:q}"
        " --failed {output.failed:q} --thresholds-json {params.thresholds:q} > {log:q} 2>&1"
