# Burned-in text: every series is read (2D: every image and frame; volumes: slices
# screened) by region rules and two readers, cleaned, and proved clean by a re-read
# before conversion or the release may use its pixels. A series is read in its
# de-identification job (rule deid_series, deid.smk: `neurodeid deid --text-out-dir`);
# this file has the plain images listed in config.


rule redact_image:
    """A plain 2D image listed in config (redact.images): redacted, OCR-verified, released on PASS."""
    input:
        image=lambda w: REDACT_IMAGES[int(w.n)],
        needles=L.private_file("needles/paths.json"),
    output:
        result=L.image_file("result"),
        qc=report(
            L.image_file("qc"),
            caption="../report/redact.rst",
            category="Burned-in text",
            subcategory="All subjects",
            labels={"image": "listed image {n}"},
        ),
    log:
        L.log("redact_image", "image{n}"),
    benchmark:
        L.benchmark("redact_image", "image{n}")
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=REDACT_JSON,
        dst=lambda w: L.released_image(w.n, image_suffix(w)),
    shell:
        "neurodeid redact-image {input.image:q} --release-out {params.dst:q} --result {output.result:q}"
        " --qc {output.qc:q} --needles {input.needles:q} --config-json {params.config:q} > {log:q} 2>&1"
