# Conversion of de-identified DICOM to NIfTI + sanitised sidecar, BIDS naming per
# session, and the release of the images that carry no face.


rule convert_series:
    """dcm2niix on one de-identified series; sidecar from an allow-list; geometry checked."""
    input:
        f"{WORK}/deid/sub-{{subject}}/ses-{{session}}/{{series}}",
    output:
        images=directory(f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}"),
        result=f"{WORK}/convert/sub-{{subject}}/ses-{{session}}/{{series}}.json",
    log:
        f"{LOGS}/convert_series/sub-{{subject}}_ses-{{session}}_{{series}}.log",
    benchmark:
        f"{BENCH}/convert_series/sub-{{subject}}_ses-{{session}}_{{series}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dcm2niix=config["convert"]["dcm2niix"],
    shell:
        "neurodeid convert {input:q} --out-dir {output.images:q} --result {output.result:q}"
        " --dcm2niix={params.dcm2niix:q} > {log:q} 2>&1"


rule bids_names:
    """BIDS names (runs, echoes, parts) for every converted image of one session."""
    input:
        series=session_series_json,
        conversions=session_conversions,
        heuristics=config["convert"]["heuristics"],
    output:
        f"{PRIVATE}/bids/sub-{{subject}}/ses-{{session}}.names.json",
    log:
        f"{LOGS}/bids_names/sub-{{subject}}_ses-{{session}}.log",
    benchmark:
        f"{BENCH}/bids_names/sub-{{subject}}_ses-{{session}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "neurodeid bids-names {input.series:q} --conversions {input.conversions:q}"
        " --subject {wildcards.subject} --session {wildcards.session}"
        " --heuristics {input.heuristics:q} --out {output:q} > {log:q} 2>&1"


rule release_session:
    """Swap one session's images (and NRRD copies) into the release, atomically."""
    input:
        names=f"{PRIVATE}/bids/sub-{{subject}}/ses-{{session}}.names.json",
        sources=session_release_sources,
        decisions=session_decisions,
    output:
        listing=f"{PRIVATE}/released/bids/sub-{{subject}}/ses-{{session}}.tsv",
        applied=f"{PRIVATE}/review/applied/bids/sub-{{subject}}/ses-{{session}}.json",
    log:
        f"{LOGS}/release_session/sub-{{subject}}_ses-{{session}}.log",
    benchmark:
        f"{BENCH}/release_session/sub-{{subject}}_ses-{{session}}.tsv"
    group:
        "subject"
    conda:
        "../envs/neurodeid.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        sources=session_source_args,
        converted=session_converted_args,
        deface=session_deface_args,
        morphometry=session_morphometry_args,
        release_dir=RELEASE,
        tmp_dir=f"{WORK}/tmp",
        nrrd="--nrrd" if config["convert"]["nrrd"] else "--no-nrrd",
    shell:
        "neurodeid release-session {input.names:q} --subject {wildcards.subject}"
        " --session {wildcards.session} --source {params.sources} --converted {params.converted}"
        " --deface-result {params.deface} --morphometry {params.morphometry}"
        " --release-dir {params.release_dir:q} --tmp-dir {params.tmp_dir:q}"
        " --listing {output.listing:q} {params.nrrd}"
        " --decisions {input.decisions:q} --applied {output.applied:q} > {log:q} 2>&1"
