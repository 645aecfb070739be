# Morphometry checks: the same brain extraction and tissue segmentation on the
# original and on the defaced image prove the brain was not harmed; a FAIL keeps
# the image out of the release.


rule morphometry_series:
    """Brain and tissue measures, original vs defaced, for every defaced image of a series."""
    input:
        converted=f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}",
        defaced=f"{WORK}/deface/sub-{{subject}}/ses-{{session}}/{{series}}",
        result=f"{PRIVATE}/deface/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    output:
        images=directory(
            f"{WORK}/morphometry/sub-{{subject}}/ses-{{session}}/{{series}}"
        ),
        table=f"{PRIVATE}/morphometry/sub-{{subject}}/ses-{{session}}/{{series}}.tsv",
    log:
        f"{LOGS}/morphometry_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/morphometry_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
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
        label=lambda w: f"sub-{w.subject}_ses-{w.session}_{w.series}",
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
            f"{PRIVATE}/morphometry/summary.tsv",
            caption="../report/morphometry_table.rst",
            category="Morphometry",
            subcategory="All subjects",
            labels={"what": "table, every image"},
        ),
        plot=report(
            f"{PRIVATE}/morphometry/summary.png",
            caption="../report/morphometry_summary.rst",
            category="Morphometry",
            subcategory="All subjects",
            labels={"what": "change per measure"},
        ),
        failed=f"{PRIVATE}/morphometry/failed.tsv",
    log:
        f"{LOGS}/morphometry_summary.log",
    benchmark:
        f"{BENCH}/morphometry_summary.tsv"
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
