# neurodeid: make neuroimaging DICOM datasets safe to share.
# A table of contents: config, schema check, one include per stage, `rule all`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/deid.smk"
include: "workflow/rules/redact.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/deface.smk"
include: "workflow/rules/morphometry.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/quasi.smk"
include: "workflow/rules/review.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
