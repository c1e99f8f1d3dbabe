"""The Jinja2 template of the HTML audit report (kept in a module so that it ships with the package).

The template only lays out and formats the report document (``audit_report.json``): every number it shows
comes from that document, through the filters of :mod:`mmdx.audit.html`. It references no file and no URL:
styles are in the page, figures are ``data:`` URIs, and there is no script.
"""

STYLE = """
:root { --ink:#1d2430; --muted:#5b6472; --line:#dde2e8; --soft:#f5f7fa; --accent:#1f5f99;
        --ok:#2e7d4f; --na:#9a5b00; --warn:#b23a2a; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
       "Helvetica Neue",Arial,sans-serif; }
header { padding:28px 40px 18px; border-bottom:3px solid var(--accent); background:var(--soft); }
header h1 { margin:0 0 6px; font-size:24px; }
header .sub { color:var(--muted); margin:0 0 12px; }
.layout { display:flex; align-items:flex-start; }
nav { position:sticky; top:0; width:230px; flex:none; padding:18px 14px 18px 24px; max-height:100vh;
      overflow:auto; font-size:13px; border-right:1px solid var(--line); }
nav ol { margin:0; padding-left:18px; } nav li { margin:3px 0; }
nav a { color:var(--ink); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { flex:1; min-width:0; padding:8px 40px 40px; max-width:1100px; }
section { padding:10px 0 18px; border-bottom:1px solid var(--line); }
h2 { font-size:20px; margin:18px 0 8px; } h3 { font-size:15px; margin:16px 0 6px; }
h4 { font-size:13.5px; margin:12px 0 4px; color:var(--muted); }
p { margin:6px 0; } .muted { color:var(--muted); } .small { font-size:12px; }
table { border-collapse:collapse; margin:8px 0 12px; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px 4px 0; text-align:left; vertical-align:top; }
th { color:var(--muted); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; padding-left:10px; }
tr.flagged td { color:var(--muted); background:#fbf7ef; }
table.kv th { width:230px; font-weight:500; }
.badge { display:inline-block; font-size:11px; font-weight:600; padding:1px 8px; border-radius:10px;
         vertical-align:middle; margin-left:6px; border:1px solid currentColor; }
.badge.ok { color:var(--ok); } .badge.not_available { color:var(--na); }
.badge.reported { color:var(--ok); } .badge.partial { color:var(--na); }
.unavailable { padding:10px 14px; background:#fff8ec; border-left:4px solid var(--na); }
.flag { color:var(--warn); font-weight:600; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width:190px; flex:1;
        background:var(--soft); }
.card .label { font-size:12px; color:var(--muted); } .card .value { font-size:18px; font-weight:600; }
.card .detail { font-size:12px; color:var(--muted); }
figure { margin:10px 0 14px; } figure img { max-width:100%; height:auto; }
figcaption { font-size:12px; color:var(--muted); }
.grid2 { display:flex; flex-wrap:wrap; gap:18px; } .grid2 > figure { flex:1; min-width:300px; }
code, .mono { font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace; font-size:12px; }
.break { word-break:break-all; }
details { margin:6px 0; } summary { cursor:pointer; color:var(--accent); }
pre { background:var(--soft); padding:10px; overflow:auto; font-size:11.5px; max-height:420px; }
ul.limits li { margin:3px 0; } .source { font-size:11px; color:var(--muted); text-transform:uppercase; }
blockquote { margin:4px 0; padding:4px 10px; border-left:3px solid var(--line); white-space:pre-wrap; }
footer { padding:16px 40px; color:var(--muted); font-size:12px; border-top:1px solid var(--line); }
@media print {
  nav { display:none; } main { padding:0 10mm; max-width:none; } header { padding:10mm; }
  section, figure, table { break-inside:avoid; } details > *:not(summary) { display:block; }
}
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mmdx {{ doc.mmdx_version }}">
<title>Model audit report: {{ doc.run.name }}</title>
<style>{{ style }}</style>
</head>
<body>
{%- set S = doc.sections %}
{%- set run = doc.run %}
{%- set settings = doc.settings %}
<header>
  <h1>Model audit report: {{ run.name }}</h1>
  <p class="sub">Task: probability of <strong>{{ run.positive or "the positive class" }}</strong>
    &middot; model version <span class="mono">{{ run.model_version }}</span>
    &middot; evaluated on the <strong>{{ settings.split }}</strong> split of cohort
    <strong>{{ run.cohort or "unknown" }}</strong></p>
  <table class="kv small">
    <tr><th>Report created</th><td>{{ doc.created }}</td></tr>
    <tr><th>Run directory</th><td class="mono break">{{ run.directory }}</td></tr>
    <tr><th>Intervals</th><td>{{ settings.alpha | level }} confidence; bootstrap with {{ settings.n_resamples | count }}
      resamples, seed {{ settings.seed }}</td></tr>
    <tr><th>Machine-readable twin</th><td class="mono">audit_report.json (schema version {{ doc.schema_version }})</td></tr>
  </table>
</header>
<div class="layout">
<nav aria-label="Contents">
  <ol>
    <li><a href="#at-a-glance">At a glance</a></li>
    {%- for key, title in titles.items() %}
    <li><a href="#{{ key }}">{{ title }}</a>{% if S[key].status != "ok" %} <span class="muted small">(n/a)</span>{% endif %}</li>
    {%- endfor %}
  </ol>
</nav>
<main>

<section id="at-a-glance">
  <h2>At a glance</h2>
  <div class="cards">
  {%- if S.discrimination.status == "ok" %}
    {%- set ev = S.discrimination.by_split[S.discrimination.split] %}
    <div class="card"><div class="label">AUROC ({{ S.discrimination.split }}, n={{ ev.n | count }})</div>
      <div class="value">{{ ev.auroc.estimate | num }}</div><div class="detail">{{ ev.auroc | interval }}</div></div>
    <div class="card"><div class="label">AUPRC (prevalence {{ ev.prevalence | pct }})</div>
      <div class="value">{{ ev.auprc.estimate | num }}</div><div class="detail">{{ ev.auprc | interval }}</div></div>
  {%- endif %}
  {%- if S.operating_point.status == "ok" %}
    {%- set m = S.operating_point.metrics %}
    <div class="card"><div class="label">Sensitivity / specificity at {{ S.operating_point.threshold | num }}</div>
      <div class="value">{{ m.sensitivity.estimate | pct }} / {{ m.specificity.estimate | pct }}</div>
      <div class="detail">PPV {{ m.ppv.estimate | pct }}, NPV {{ m.npv.estimate | pct }}</div></div>
  {%- endif %}
  {%- if S.calibration.status == "ok" %}
    <div class="card"><div class="label">Calibration after scaling ({{ S.calibration.ece_bins }} bins)</div>
      <div class="value">ECE {{ S.calibration.after.ece.estimate | num }}</div>
      <div class="detail">Brier {{ S.calibration.after.brier.estimate | num }}, slope {{ S.calibration.after.fit.slope | num(2) }}</div></div>
  {%- endif %}
  {%- if S.subgroups.status == "ok" %}
    {%- set flagged = S.subgroups.attributes | sum(attribute="n_flagged") %}
    {%- set groups = S.subgroups.attributes | sum(attribute="n_groups") %}
    <div class="card"><div class="label">Subgroups</div>
      <div class="value">{{ groups }} groups</div>
      <div class="detail">{{ flagged }} too small to judge (min n {{ S.subgroups.min_n }})</div></div>
  {%- endif %}
  {%- if S.robustness.status == "ok" and S.robustness.largest_auroc_drop %}
    <div class="card"><div class="label">Largest AUROC change under degraded inputs</div>
      <div class="value">{{ S.robustness.largest_auroc_drop.change | signed }}</div>
      <div class="detail">{{ S.robustness.largest_auroc_drop.label }}</div></div>
  {%- endif %}
  {%- if S.clinician_review.status == "ok" %}
    <div class="card"><div class="label">Clinicians agreeing with the model</div>
      <div class="value">{{ S.clinician_review.agreement.estimate | pct }}</div>
      <div class="detail">{{ S.clinician_review.n_verdicts | count }} verdicts on {{ S.clinician_review.n_cases_reviewed | count }} cases</div></div>
  {%- endif %}
  </div>
  <table>
    <tr><th>Section</th><th>Status</th><th>Reason when not available</th></tr>
    {%- for key, title in titles.items() %}
    <tr><td><a href="#{{ key }}">{{ title }}</a></td><td><span class="badge {{ S[key].status }}">{{ S[key].status | replace("_", " ") }}</span></td>
      <td class="small">{{ S[key].get("reason") or "" }}</td></tr>
    {%- endfor %}
  </table>
</section>

{%- macro heading(key) %}
  <h2>{{ titles[key] }} <span class="badge {{ S[key].status }}">{{ S[key].status | replace("_", " ") }}</span></h2>
  {%- if S[key].status != "ok" %}<p class="unavailable">Not available: {{ S[key].reason }}</p>{% endif %}
{%- endmacro %}

{%- macro rate_row(name, iv) %}
  <tr><td>{{ name }}</td><td class="num">{{ iv.estimate | pct }}</td><td class="num">{{ iv.low | pct }}</td>
    <td class="num">{{ iv.high | pct }}</td><td class="small muted">{{ iv.reason or "" }}</td></tr>
{%- endmacro %}

{%- set P = S.provenance %}
<section id="provenance">
  {{ heading("provenance") }}
  {%- if P.status == "ok" %}
  <table class="kv">
    <tr><th>mmdx version</th><td>{{ P.mmdx_version }}</td></tr>
    <tr><th>Source commit</th><td class="mono">{{ P.git.commit }}{% if P.git.dirty %} <span class="flag">(uncommitted changes)</span>{% endif %}</td></tr>
    <tr><th>Model version (weights checksum)</th><td class="mono">{{ P.model.model_version }}</td></tr>
    <tr><th>Trained</th><td>{{ P.model.trained or "unknown" }} with mmdx {{ P.model.trained_with_mmdx or "unknown" }};
      {{ P.model.parameters | count }} parameters</td></tr>
    <tr><th>Cohort</th><td>{{ P.cohort.name }} (version {{ P.cohort.version }})</td></tr>
    <tr><th>Cohort fingerprint at training</th><td class="mono break">{{ P.cohort.fingerprint }}</td></tr>
    <tr><th>Cohort fingerprint now</th><td class="mono break">
      {%- if P.cohort_now.fingerprint %}{{ P.cohort_now.fingerprint }}
        {% if P.cohort_now.matches_training %}<span class="badge ok">matches</span>{% else %}<span class="flag">differs from training</span>{% endif %}
      {%- else %}<span class="muted">{{ P.cohort_now.reason }}</span>{% endif %}</td></tr>
    <tr><th>Split fingerprint at training</th><td class="mono break">{{ P.cohort.split_fingerprint }}</td></tr>
    <tr><th>Split fingerprint of the predictions</th><td class="mono break">{{ P.split_now.fingerprint }}
      {% if P.split_now.matches_training %}<span class="badge ok">matches</span>{% elif P.split_now.matches_training == false %}<span class="flag">differs from training</span>{% endif %}</td></tr>
    <tr><th>Seeds</th><td>{% for k, v in P.seeds.items() %}{{ k }} {{ v }}{% if not loop.last %}; {% endif %}{% endfor %}</td></tr>
    {%- if P.preprocessing and P.preprocessing.image_plan %}
    <tr><th>Image preprocessing plan</th><td>{{ P.preprocessing.description }}</td></tr>
    {%- endif %}
  </table>
  {%- if P.preprocessing and P.preprocessing.image_plan %}
  {%- if P.training_history %}
  <details><summary>Validation AUROC per training epoch: fused and each encoder's own head</summary>
  <table>
    <tr><th>Stage</th><th class="num">epoch</th><th class="num">fused</th>{% for m in P.training_history[-1].branch_val_auroc %}<th class="num">{{ m }}</th>{% endfor %}</tr>
    {%- for h in P.training_history %}
    <tr><td>{{ h.stage }}</td><td class="num">{{ h.epoch }}</td><td class="num">{{ h.val_auroc | num }}</td>{% for m in P.training_history[-1].branch_val_auroc %}<td class="num">{{ h.branch_val_auroc.get(m) | num }}</td>{% endfor %}</tr>
    {%- endfor %}
  </table>
  </details>
  {%- endif %}
  <details><summary>Image plan and the fingerprint of the training images</summary>
    <pre>{{ {"plan": P.preprocessing.image_plan, "fingerprint": P.preprocessing.image_fingerprint} | tojson(indent=1) }}</pre>
  </details>
  {%- endif %}
  <h3>Hardware</h3>
  <table>
    <tr><th></th><th>Training</th><th>This audit</th></tr>
    {%- for key in ["platform", "processor", "cpu_count", "cuda", "python"] %}
    <tr><td>{{ key }}</td><td>{{ P.hardware.training.get(key) if P.hardware.training.get(key) is not none else "none" }}</td>
      <td>{{ P.hardware.audit.get(key) if P.hardware.audit.get(key) is not none else "none" }}</td></tr>
    {%- endfor %}
  </table>
  <details><summary>Package versions</summary>
    <table>{% for name, version in P.packages.items() %}<tr><td>{{ name }}</td><td class="mono">{{ version or "not installed" }}</td></tr>{% endfor %}</table>
  </details>
  <details><summary>Run artifacts (SHA-256)</summary>
    <table>{% for name, digest in P.artifacts.items() %}<tr><td class="mono">{{ name }}</td><td class="mono break">{{ digest or "absent" }}</td></tr>{% endfor %}</table>
  </details>
  <details><summary>Resolved configuration</summary><pre>{{ P.config | tojson(indent=1) }}</pre></details>
  {%- endif %}
</section>

{%- set M = S.model_card %}
<section id="model_card">
  {{ heading("model_card") }}
  {%- if M.status == "ok" %}
  <h3>Intended use</h3>
  <p>{{ M.intended_use or "not stated" }}</p>
  <h3>Out of scope</h3>
  <ul>{% for use in M.out_of_scope %}<li>{{ use }}</li>{% else %}<li class="muted">none stated</li>{% endfor %}</ul>
  <h3>Task and output</h3>
  <table class="kv">
    <tr><th>Outcome (label column)</th><td>{{ M.task.label }}: 1 = {{ M.task.positive }}</td></tr>
    <tr><th>Output</th><td>calibrated probability of the positive class; positive when at or above
      {{ M.operating_point.threshold | num }} (rule {{ M.operating_point.rule }}, chosen on {{ M.operating_point.chosen_on }})</td></tr>
    <tr><th>Modalities</th><td>{{ M.modalities | join(", ") }}; {{ M.inputs.missing_modalities }}</td></tr>
  </table>
  <h3>Inputs and units</h3>
  {%- if M.inputs.image %}
  <p><strong>Image</strong>: {{ M.inputs.image.dims }}D, {{ M.inputs.image.shape | join(" x ") }} voxels
    {%- if M.inputs.image.spacing %} of {{ M.inputs.image.spacing | join(" x ") }} mm{% endif %},
    window {{ M.inputs.image.window | join(" to ") }} HU; {{ M.inputs.image.intensity }}; orientation {{ M.inputs.image.orientation }}.</p>
  {%- endif %}
  {%- if M.inputs.text %}
  <p><strong>Notes</strong>: {{ M.inputs.text.description }}, first {{ M.inputs.text.max_tokens }} tokens; tokenizer {{ M.inputs.text.tokenizer or "of the pretrained encoder" }}.</p>
  {%- endif %}
  {%- if M.inputs.tabular %}
  <table>
    <tr><th>Input</th><th>Name</th><th>LOINC</th><th>Unit</th></tr>
    {%- for row in M.inputs.tabular %}
    <tr><td class="mono">{{ row.key }}</td><td>{{ row.display or "" }}</td><td class="mono">{{ row.loinc or "" }}</td><td class="mono">{{ row.unit }}</td></tr>
    {%- endfor %}
  </table>
  {%- endif %}
  <h3>Architecture and training</h3>
  <table class="kv">
    {%- for part, component in M.architecture.items() %}
    <tr><th>{{ part }}</th><td class="mono">{{ component.name }}{% for k, v in component.items() if k != "name" %}, {{ k }}={{ v }}{% endfor %}</td></tr>
    {%- endfor %}
    <tr><th>Parameters</th><td>{{ M.parameters.total | count }} ({{ M.parameters.trainable | count }} trainable)</td></tr>
    <tr><th>Training cases / validation cases</th><td>{{ M.training.train_cases | count }} / {{ M.training.val_cases | count }}</td></tr>
    <tr><th>Epochs</th><td>{{ M.training.epochs_run }} of at most {{ M.training.max_epochs }}, best {{ M.training.best_epoch }} (stopped: {{ M.training.stopped }})</td></tr>
    <tr><th>Optimisation</th><td>learning rate {{ M.training.learning_rate }}; modality dropout {{ M.training.modality_dropout }};
      class weighting {{ M.training.class_weighting }}; early stopping on {{ M.training.early_stopping }}; seed {{ M.training.seed }}</td></tr>
    <tr><th>Training strategy</th><td class="mono">{{ M.training.strategy or "joint" }}</td></tr>
    {%- if M.training.cross_validation %}{% set CV = M.training.cross_validation %}
    {%- set FOLDED = M.training.ensemble and M.training.ensemble.split == "folds" %}
    <tr><th>Cross-validated AUROC ({{ "training and validation splits" if FOLDED else "training split" }})</th><td>{{ CV.auroc | num(3) }} ± {{ CV.auroc_sd | num(3) }}, mean of {{ CV.folds }} folds over {{ CV.cases | count }} {{ "training and validation" if FOLDED else "training" }} cases (each fold scored by {{ "the ensemble member" if FOLDED else "a model" }} trained without it)</td></tr>
    {%- endif %}
    {%- if M.training.ensemble %}{% set E = M.training.ensemble %}
    <tr><th>Ensemble</th><td>{{ E.members | length }} models with the seeds {% for m in E.members %}{{ m.seed }}{% if not loop.last %}, {% endif %}{% endfor %} (the epochs above are the first's); {{ "AUROC on the fold each held out" if E.split == "folds" else "validation AUROC" }} {% for m in E.members %}{{ m.val_auroc | num(3) }}{% if not loop.last %}, {% endif %}{% endfor %}, {{ "out of fold" if E.split == "folds" else "of the ensemble" }} {{ E.val_auroc | num(3) }}; prediction: the mean of their calibrated logits</td></tr>
    {%- endif %}
  </table>
  {%- if M.branches %}
  <table>
    <tr><th>Branch</th><th class="num">own AUROC, validation</th><th class="num">own AUROC, {{ M.branches[0].split }}</th><th class="num">fused AUROC lost when removed</th><th></th></tr>
    {%- for b in M.branches %}
    <tr><td>{{ b.modality }}</td><td class="num">{{ b.own_val_auroc | num }}</td><td class="num">{{ b.alone | num }}</td><td class="num">{{ b.lost_when_removed | num }}</td>
      <td>{% if b.under_used %}<span class="flag">contributes less than it could</span>{% endif %}</td></tr>
    {%- endfor %}
  </table>
  <p class="small muted">Own AUROC: the encoder's own head, on the cases that have the modality. Lost when removed: the fused AUROC with the modality intact minus without it (robustness section).</p>
  {%- endif %}
  {%- for w in M.warnings or [] %}
  <p><span class="flag">Training warning:</span> {{ w }}</p>
  {%- endfor %}
  <h3>Limitations</h3>
  <ul class="limits">
  {%- for item in M.limitations %}
    <li><span class="source">{{ item.source }} &middot; {{ titles.get(item.section, item.section) }}</span><br>{{ item.text }}</li>
  {%- endfor %}
  </ul>
  <h3>TRIPOD+AI items covered</h3>
  <p class="small muted">{{ M.tripod_ai.reference }}</p>
  <table>
    <tr><th>Item</th><th>Topic</th><th>Covered by</th><th>What this report gives</th><th>Status</th></tr>
    {%- for item in M.tripod_ai["items"] %}
    <tr><td>{{ item.item }}</td><td>{{ item.topic }}</td>
      <td>{% for s in item.sections %}<a href="#{{ s }}">{{ titles[s] }}</a>{% if not loop.last %}, {% endif %}{% endfor %}</td>
      <td class="small">{{ item.covers }}</td><td><span class="badge {{ item.coverage }}">{{ item.coverage | replace("_", " ") }}</span></td></tr>
    {%- endfor %}
  </table>
  <details><summary>Items left to the study report ({{ M.tripod_ai.not_covered | length }})</summary>
    <table>{% for item in M.tripod_ai.not_covered %}<tr><td>{{ item.item }}</td><td>{{ item.topic }}</td><td class="small muted">{{ item.reason }}</td></tr>{% endfor %}</table>
  </details>
  {%- endif %}
</section>

{%- set F = S.cohort_flow %}
<section id="cohort_flow">
  {{ heading("cohort_flow") }}
  {%- if F.status == "ok" %}
  <table class="kv">
    <tr><th>Cases in (rows of the cases table)</th><td class="num">{{ F.rows_in | count }}</td></tr>
    <tr><th>Accepted / with warnings</th><td class="num">{{ F.accepted | count }} / {{ F.accepted_with_warnings | count }}</td></tr>
    <tr><th>Excluded by validation</th><td class="num">{{ F.rejected | count }}</td></tr>
    <tr><th>Usable</th><td class="num">{{ F.usable | count }}</td></tr>
    <tr><th>Predicted</th><td class="num">{{ F.predicted | count }}{% if F.not_predicted %} <span class="flag">({{ F.not_predicted }} usable not predicted)</span>{% endif %}</td></tr>
    <tr><th>Labelled (prevalence)</th><td class="num">{{ F.labelled | count }} ({{ F.prevalence | pct }})</td></tr>
  </table>
  <h3>Excluded by reason</h3>
  {%- if F.excluded_by_reason %}
  <table>
    <tr><th>Reason code</th><th>Meaning</th><th class="num">Cases</th>{% for s in F.splits %}<th class="num">{{ s }}</th>{% endfor %}<th class="num">no split</th></tr>
    {%- for row in F.excluded_by_reason %}
    <tr><td class="mono">{{ row.code }}</td><td class="small">{{ row.description }}</td><td class="num">{{ row.cases }}</td>
      {%- for s in F.splits %}<td class="num">{{ row.by_split.get(s, 0) }}</td>{% endfor %}<td class="num">{{ row.by_split.get("unassigned", 0) }}</td></tr>
    {%- endfor %}
  </table>
  {%- else %}<p class="muted">No case was excluded.</p>{% endif %}
  {%- if F.issues_in_kept_cases %}
  <h4>Issues in kept cases (the affected value, file or modality was dropped)</h4>
  <table>{% for row in F.issues_in_kept_cases %}<tr><td class="mono">{{ row.code }}</td><td class="small">{{ row.description }}</td><td class="num">{{ row.cases }} cases</td></tr>{% endfor %}</table>
  {%- endif %}
  {%- if F.file_issues %}
  <h4>Issues not attached to a case</h4>
  <table>{% for row in F.file_issues %}<tr><td class="mono">{{ row.code }}</td><td class="small">{{ row.description }}</td><td class="num">{{ row.count }}</td></tr>{% endfor %}</table>
  {%- endif %}
  <h3>Per split</h3>
  <table>
    <tr><th></th>{% for s in F.splits %}<th class="num">{{ s }}</th>{% endfor %}</tr>
    {%- for key, label in [("usable", "usable"), ("predicted", "predicted"), ("labelled", "labelled"), ("positive", "positive"), ("negative", "negative"), ("unlabelled", "unlabelled")] %}
    <tr><td>{{ label }}</td>{% for s, c in F.splits.items() %}<td class="num">{{ c[key] | count }}</td>{% endfor %}</tr>
    {%- endfor %}
    <tr><td>prevalence</td>{% for s, c in F.splits.items() %}<td class="num">{{ c.prevalence | pct }}</td>{% endfor %}</tr>
  </table>
  <h4>Modality presence patterns</h4>
  {%- set patterns = [] %}{% for s, c in F.splits.items() %}{% for p in c.modality_patterns %}{% if p not in patterns %}{% set _ = patterns.append(p) %}{% endif %}{% endfor %}{% endfor %}
  <table>
    <tr><th>Pattern</th>{% for s in F.splits %}<th class="num">{{ s }}</th>{% endfor %}</tr>
    {%- for p in patterns %}<tr><td class="mono">{{ p }}</td>{% for s, c in F.splits.items() %}<td class="num">{{ c.modality_patterns.get(p, 0) }}</td>{% endfor %}</tr>{% endfor %}
  </table>
  {%- for attribute in F.attributes %}
  <h4>{{ attribute }}</h4>
  {%- set values = [] %}{% for s, c in F.splits.items() %}{% for v in c.characteristics[attribute] %}{% if v not in values %}{% set _ = values.append(v) %}{% endif %}{% endfor %}{% endfor %}
  <table>
    <tr><th>{{ attribute }}</th>{% for s in F.splits %}<th class="num">{{ s }}</th>{% endfor %}</tr>
    {%- for v in values | sort %}<tr><td>{{ v }}</td>{% for s, c in F.splits.items() %}<td class="num">{{ c.characteristics[attribute].get(v, 0) }}</td>{% endfor %}</tr>{% endfor %}
  </table>
  {%- endfor %}
  {%- endif %}
</section>

{%- set D = S.discrimination %}
<section id="discrimination">
  {{ heading("discrimination") }}
  {%- if D.status == "ok" %}
  <p class="small muted">{{ D.alpha | level }} intervals: {{ D.by_split[D.split].auroc.method }}, {{ D.n_resamples | count }} resamples (seed {{ D.seed }}). The {{ D.split }} split is the evaluation; the others are shown for comparison.</p>
  <table>
    <tr><th>Split</th><th class="num">n</th><th class="num">positive</th><th class="num">prevalence</th><th class="num">AUROC</th><th>interval</th><th class="num">AUPRC</th><th>interval</th></tr>
    {%- for s, e in D.by_split.items() %}
    <tr{% if s == D.split %} style="font-weight:600"{% endif %}><td>{{ s }}</td><td class="num">{{ e.n | count }}</td><td class="num">{{ e.n_positive | count }}</td><td class="num">{{ e.prevalence | pct }}</td>
      <td class="num">{{ e.auroc.estimate | num }}</td><td>{{ e.auroc | bounds }}</td><td class="num">{{ e.auprc.estimate | num }}</td><td>{{ e.auprc | bounds }}</td></tr>
    {%- endfor %}
  </table>
  {%- if D.bayes_auroc is not none %}<p class="small">Bayes-optimal AUROC of this synthetic cohort (the best any model can do): {{ D.bayes_auroc | num }}.</p>{% endif %}
  <div class="grid2">
    {%- if figures.roc %}<figure><img src="{{ figures.roc }}" alt="ROC curves per split"><figcaption>ROC curves.</figcaption></figure>{% endif %}
    {%- if figures.pr %}<figure><img src="{{ figures.pr }}" alt="Precision-recall curves per split"><figcaption>Precision-recall curves; the dotted line is the prevalence.</figcaption></figure>{% endif %}
  </div>
  {%- endif %}
</section>

{%- set O = S.operating_point %}
<section id="operating_point">
  {{ heading("operating_point") }}
  {%- if O.status == "ok" %}
  <p>Threshold <strong>{{ O.threshold | num(4) }}</strong> on the calibrated probability, chosen on the {{ O.chosen_on }} split by the rule <em>{{ O.rule }}</em>; {{ O.split }} split, n={{ O.n | count }}, {{ O.predicted_positive | count }} predicted positive.</p>
  <table>
    <tr><th></th><th class="num">label 1</th><th class="num">label 0</th></tr>
    <tr><td>predicted positive</td><td class="num">{{ O.counts.tp }} (TP)</td><td class="num">{{ O.counts.fp }} (FP)</td></tr>
    <tr><td>predicted negative</td><td class="num">{{ O.counts.fn }} (FN)</td><td class="num">{{ O.counts.tn }} (TN)</td></tr>
  </table>
  <table>
    <tr><th>Measure</th><th class="num">estimate</th><th class="num">low</th><th class="num">high</th><th></th></tr>
    {{ rate_row("sensitivity", O.metrics.sensitivity) }}
    {{ rate_row("specificity", O.metrics.specificity) }}
    {{ rate_row("PPV", O.metrics.ppv) }}
    {{ rate_row("NPV", O.metrics.npv) }}
    {{ rate_row("false positive rate", O.metrics.fpr) }}
  </table>
  <p class="small muted">{{ O.alpha | level }} {{ O.metrics.sensitivity.method }} intervals, conditional on the observed denominators.</p>
  {%- if O.net_benefit_at_threshold %}
  <p>Net benefit at the threshold: model {{ O.net_benefit_at_threshold.model | num(4) }}, treat all {{ O.net_benefit_at_threshold.treat_all | num(4) }}, treat none 0.</p>
  {%- endif %}
  {%- if figures.decision %}<figure><img src="{{ figures.decision }}" alt="Decision curve"><figcaption>Decision curve (net benefit, Vickers and Elkin 2006).</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set C = S.calibration %}
<section id="calibration">
  {{ heading("calibration") }}
  {%- if C.status == "ok" %}
  {%- if C.method == "ensemble" %}
  <p>An ensemble of {{ C.members | length }} models trained with the same settings and different seeds, {% if C.member_split == "folds" %}each trained without one of {{ C.members | length }} folds of the labelled training and validation cases and calibrated on the fold it held out{% else %}each calibrated on the {{ C.fitted_on }} split{% endif %} ({% for m in C.members %}seed {{ m.seed }}: {% if C.member_split == "folds" %}{{ m.held_out_cases | count }} held out, {% endif %}temperature {{ m.temperature | num(4) }}, offset {{ m.offset | num(4) }}{% if not loop.last %}; {% endif %}{% endfor %}); the probability is the sigmoid of the mean of their calibrated logits, so no further scaling is applied and the two columns agree. {{ C.split }} split, n={{ C.n | count }}.</p>
  {%- else %}
  <p>{{ C.method | capitalize }} scaling fitted on the {{ C.fitted_on }} split: temperature {{ C.temperature | num(4) }}{% if C.method == "platt" %}, offset {{ C.offset | num(4) }}{% if C.prevalence is not none %} (set so that the mean calibrated probability on the validation split equals the share of positives among the labelled training and validation cases, {{ C.prevalence | num(4) }}){% endif %}{% endif %}{% if C.validation_nll_before is not none %} (validation log-loss {{ C.validation_nll_before | num(4) }} before, {{ C.validation_nll_after | num(4) }} after){% endif %}. {{ C.split }} split, n={{ C.n | count }}.</p>
  {%- endif %}
  <table>
    <tr><th>Measure</th><th class="num">before scaling</th><th>interval</th><th class="num">after scaling</th><th>interval</th></tr>
    <tr><td>ECE ({{ C.ece_bins }} {{ C.ece_strategy }} bins)</td><td class="num">{{ C.before.ece.estimate | num }}</td><td>{{ C.before.ece | bounds }}</td><td class="num">{{ C.after.ece.estimate | num }}</td><td>{{ C.after.ece | bounds }}</td></tr>
    <tr><td>Brier score</td><td class="num">{{ C.before.brier.estimate | num }}</td><td>{{ C.before.brier | bounds }}</td><td class="num">{{ C.after.brier.estimate | num }}</td><td>{{ C.after.brier | bounds }}</td></tr>
    <tr><td>calibration slope</td><td class="num">{{ C.before.fit.slope | num }}</td><td></td><td class="num">{{ C.after.fit.slope | num }}</td><td></td></tr>
    <tr><td>calibration-in-the-large (intercept)</td><td class="num">{{ C.before.fit.intercept | num }}</td><td></td><td class="num">{{ C.after.fit.intercept | num }}</td><td></td></tr>
    <tr><td>mean predicted / observed rate</td><td class="num">{{ C.before.mean_predicted | num }} / {{ C.before.observed_rate | num }}</td><td></td><td class="num">{{ C.after.mean_predicted | num }} / {{ C.after.observed_rate | num }}</td><td></td></tr>
  </table>
  {%- for name in ["before", "after"] %}{% if C[name].fit.reason %}<p class="small muted">{{ name }}: {{ C[name].fit.reason }}</p>{% endif %}{% endfor %}
  <p class="small muted">Slope and intercept from logistic recalibration on logit(p); ideal slope 1, intercept 0. Reliability diagram: {{ C.reliability_bins }} uniform bins, Wilson intervals.</p>
  {%- if figures.reliability %}<figure><img src="{{ figures.reliability }}" alt="Reliability diagram"><figcaption>Reliability diagram before and after calibration; bars count the cases per bin.</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set G = S.subgroups %}
<section id="subgroups">
  {{ heading("subgroups") }}
  {%- if G.status == "ok" %}
  <p class="small muted">{{ G.split }} split at threshold {{ G.threshold | num(4) }}. A group with fewer than {{ G.min_n }} cases, or fewer than {{ G.min_events }} positives or negatives, is flagged too small to judge and left out of the gaps. AUROC: {{ G.alpha | level }} stratified bootstrap ({{ G.n_resamples | count }} resamples); sensitivity and FPR: Wilson.</p>
  {%- for table in G.attributes %}
  <h3>{{ table.attribute }}</h3>
  <table>
    <tr><th>Group</th><th class="num">n</th><th class="num">positive</th><th class="num">AUROC</th><th>interval</th><th class="num">sensitivity</th><th>interval</th><th class="num">FPR</th><th>interval</th><th class="num">ECE</th><th class="num">Brier</th><th class="num">slope</th><th>flag</th></tr>
    {%- for row in table.rows %}
    <tr{% if row.too_small %} class="flagged"{% endif %}><td>{{ row.group }}</td><td class="num">{{ row.n }}</td><td class="num">{{ row.n_positive }}</td>
      <td class="num">{{ row.auroc | num }}</td><td>{{ row.auroc_low | pair(row.auroc_high) }}</td>
      <td class="num">{{ row.sensitivity | pct }}</td><td>{{ row.sensitivity_low | pair(row.sensitivity_high, "pct") }}</td>
      <td class="num">{{ row.fpr | pct }}</td><td>{{ row.fpr_low | pair(row.fpr_high, "pct") }}</td>
      <td class="num">{{ row.ece | num }}</td><td class="num">{{ row.brier | num }}</td><td class="num">{{ row.calibration_slope | num(2) }}</td>
      <td class="small">{% if row.too_small %}<span class="flag">too small</span>: {{ row.reason }}{% endif %}</td></tr>
    {%- endfor %}
  </table>
  {%- set gap = table.gaps %}
  {%- if gap.reason %}<p class="small muted">Gaps: {{ gap.reason }}.</p>
  {%- else %}
  <p>Between {{ gap.groups_compared | join(", ") }}: AUROC gap {{ gap.auroc_gap | num }} ({{ gap.auroc_extremes | join(" vs ") }}), sensitivity gap {{ gap.sensitivity_gap | pct }}, FPR gap {{ gap.fpr_gap | pct }}, equalized-odds difference {{ gap.equalized_odds_difference | num }} (fairlearn).</p>
  {%- endif %}
  {%- endfor %}
  {%- for entry in G.unavailable %}<p class="unavailable">{{ entry.attribute }}: {{ entry.reason }}</p>{% endfor %}
  {%- if figures.subgroups %}<figure><img src="{{ figures.subgroups }}" alt="AUROC per subgroup"><figcaption>AUROC per subgroup with intervals; hollow grey points are groups too small to judge.</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set R = S.robustness %}
<section id="robustness">
  {{ heading("robustness") }}
  {%- if R.status == "ok" %}
  <p>The model re-run on the {{ R.split }} split (n={{ R.n | count }}) with degraded inputs. Image noise: {{ R.noise_method }}. Tabular missingness: {{ R.missingness_method }}. Seed {{ R.seed }}.</p>
  {%- if R.reproduction %}
  <p class="small">Intact re-run against predictions.parquet: largest logit difference {{ R.reproduction.max_abs_logit_difference | sci }}
    {% if R.reproduction.reproduced %}<span class="badge ok">reproduced</span>{% else %}<span class="flag">not reproduced (tolerance {{ R.reproduction.atol | sci }} + {{ R.reproduction.rtol | sci }} x |logit|): the cohort, the preprocessing or the model changed since the predictions were made</span>{% endif %}</p>
  {%- endif %}
  <table>
    <tr><th>Condition</th><th class="num">cases affected</th><th class="num">AUROC</th><th>interval</th><th class="num">change</th><th>interval</th><th class="num">Brier</th><th class="num">sensitivity</th><th class="num">specificity</th><th class="num">mean |&Delta;p|</th></tr>
    {%- for row in R.conditions %}
    <tr><td>{{ row.label }}</td><td class="num">{{ row.n_affected | count }}</td><td class="num">{{ row.auroc.estimate | num }}</td><td>{{ row.auroc | bounds }}</td>
      <td class="num">{% if row.auroc_change %}{{ row.auroc_change.estimate | signed }}{% endif %}</td><td>{% if row.auroc_change %}{{ row.auroc_change | bounds }}{% endif %}</td>
      <td class="num">{{ row.brier | num }}</td><td class="num">{{ row.sensitivity | pct }}</td><td class="num">{{ row.specificity | pct }}</td><td class="num">{{ row.mean_abs_probability_change | num(4) }}</td></tr>
    {%- endfor %}
  </table>
  <p class="small muted">Change: AUROC under the condition minus intact, with a {{ R.alpha | level }} paired stratified bootstrap interval ({{ R.n_resamples | count }} resamples).</p>
  {%- if R.branches %}
  <table>
    <tr><th>Branch</th><th class="num">cases with it</th><th class="num">own AUROC</th><th>interval</th><th class="num">lost when removed</th><th>interval</th><th></th></tr>
    {%- for b in R.branches %}
    <tr><td>{{ b.modality }}</td><td class="num">{{ b.n_with_modality | count }}</td>
      <td class="num">{% if b.alone %}{{ b.alone.estimate | num }}{% endif %}</td><td>{% if b.alone %}{{ b.alone | bounds }}{% endif %}</td>
      <td class="num">{% if b.lost_when_removed %}{{ b.lost_when_removed.estimate | num }}{% endif %}</td><td>{% if b.lost_when_removed %}{{ b.lost_when_removed | bounds }}{% endif %}</td>
      <td>{% if b.under_used %}<span class="flag">{{ b.modality }} branch: alone {{ b.alone.estimate | num(2) }}, lost when removed {{ b.lost_when_removed.estimate | num(2) }}</span>{% endif %}</td></tr>
    {%- endfor %}
  </table>
  <p class="small muted">Own AUROC: each encoder's own (auxiliary) head on the cases that have its modality. A branch is flagged when it reaches at least 0.60 alone (with its interval above 0.5) while removing it costs the fused model less than 0.01.</p>
  {%- endif %}
  {%- if figures.robustness %}<figure><img src="{{ figures.robustness }}" alt="AUROC under degraded inputs"><figcaption>AUROC under degraded inputs; the dotted line is the intact AUROC.</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set E = S.explanations %}
<section id="explanations">
  {{ heading("explanations") }}
  {%- if E.status == "ok" %}
  <p>{{ E.n_cases | count }} cases explained ({% for s, n in E.cases_by_split.items() %}{{ n }} {{ s }}{% if not loop.last %}, {% endif %}{% endfor %}); checks on {{ E.check_cases }} of them. Explanation version <span class="mono">{{ E.explanation_version }}</span>, computed {{ E.created or "unknown" }}.</p>
  {%- set IM = E.image_method %}
  {%- if IM and IM.name %}
  <p>Image maps drawn by <strong>{{ IM.name | replace("_", " ") }}</strong>{% if IM.chosen_by %} ({{ IM.chosen_by }}){% endif %}:
    {% if IM.passed and IM.checks and IM.checks.verdict == "not resolved" %}<span class="flag">passed the model-randomisation test on too few validation cases to be sure (its interval reaches the threshold)</span>{% elif IM.passed %}<span class="badge ok">passed the model-randomisation test</span>{% elif IM.passed == false %}<span class="flag">did not pass the model-randomisation test</span>{% else %}not checked against a randomised model{% endif %}.
    {% if IM.any_passed == false %}<span class="flag">No image attribution method passed the model-randomisation test for this model: its image maps may follow the anatomy of the input more than the model.</span>{% endif %}</p>
  {%- if IM.reason %}<p class="small">{{ IM.reason }}</p>{% endif %}
  {%- if IM.candidates %}
  <table>
    <tr><th>Candidate (validation split)</th><th class="num">randomisation |Spearman|</th><th class="num">95% interval</th><th class="num">signed</th><th class="num">anatomy, trained</th><th class="num">anatomy, randomised</th><th class="num">pointing game</th><th class="num">mass in lesion</th><th class="num">lift</th><th class="num">lesion cases</th><th>passed</th></tr>
    {%- for c in IM.candidates %}
    <tr><td>{{ c.method | replace("_", " ") }}</td><td class="num">{{ c.randomisation_abs | num }}</td><td class="num">{% if c.randomisation_interval %}{{ c.randomisation_interval[0] | num }} to {{ c.randomisation_interval[1] | num }}{% endif %}</td><td class="num">{{ c.randomisation_signed | num }}</td><td class="num">{{ c.anatomy_trained | num }}</td><td class="num">{{ c.anatomy_randomised | num }}</td><td class="num">{{ c.pointing_game | num }}</td><td class="num">{{ c.mass_in_lesion | num }}</td><td class="num">{{ c.mass_lift | num }}</td><td class="num">{{ c.n_lesion_cases }}</td>
      <td>{% if c.passed %}<span class="badge ok">yes</span>{% else %}<span class="flag">no</span>{% endif %}{% if c.verdict == "not resolved" %} <span class="flag">not resolved</span>{% endif %}</td></tr>
    {%- endfor %}
  </table>
  {%- if IM.rule %}<p class="small muted">Rule: {{ IM.rule }}.</p>{% endif %}
  {%- endif %}
  {%- endif %}
  {%- for method, result in E.methods.items() %}
  <h3>{{ method | replace("_", " ") }}</h3>
  {%- if result.deletion %}
  <h4>Faithfulness: deletion test</h4>
  <table>
    <tr><th>Modality</th><th class="num">cases</th><th class="num">area, by attribution</th><th class="num">area, random order</th><th class="num">difference</th><th class="num">share of cases faster</th><th>beats random</th></tr>
    {%- for modality, d in result.deletion.items() %}
    <tr><td>{{ modality }}</td><td class="num">{{ d.n_cases }}</td><td class="num">{{ d.auc_attribution | num(4) }}</td><td class="num">{{ d.auc_random | num(4) }}</td><td class="num">{{ d.auc_difference | sci }}</td><td class="num">{{ d.share_faster_than_random | pct }}</td>
      <td>{% if d.faster_than_random %}<span class="badge ok">yes</span>{% elif d.faster_than_random == false %}<span class="flag">no</span>{% endif %}</td></tr>
    {%- endfor %}
  </table>
  <p class="small muted">Area under the output-versus-fraction-removed curve: removing the most-attributed inputs first should lower the output faster (a smaller area) than removing them in random order.</p>
  {%- endif %}
  {%- if result.randomisation.modalities %}
  <h4>Sanity: model randomisation ({{ result.randomisation.reinitialisation }})</h4>
  <table>
    <tr><th>Modality</th><th class="num">cases</th><th class="num">mean Spearman |attr|</th><th class="num">95% interval</th><th class="num">median</th><th class="num">mean signed</th><th class="num">anatomy score, trained / randomised</th><th>passed</th></tr>
    {%- for modality, r in result.randomisation.modalities.items() %}
    <tr><td>{{ modality }}</td><td class="num">{{ r.n_cases }}</td><td class="num">{{ r.spearman_abs_mean | num }}</td><td class="num">{% if r.spearman_abs_interval %}{{ r.spearman_abs_interval[0] | num }} to {{ r.spearman_abs_interval[1] | num }}{% endif %}</td><td class="num">{{ r.spearman_abs_median | num }}</td><td class="num">{{ r.spearman_signed_mean | num }}</td>
      <td class="num">{% if r.anatomy_trained_mean is not none %}{{ r.anatomy_trained_mean | num }} / {{ r.anatomy_randomised_mean | num }}{% endif %}</td>
      <td>{% if r.passed %}<span class="badge ok">yes</span>{% elif r.passed == false %}<span class="flag">no</span>{% endif %}{% if r.verdict == "not resolved" %} <span class="flag">not resolved</span>{% endif %}</td></tr>
    {%- endfor %}
  </table>
  <p class="small muted">Rank correlation between the attributions of the trained model and of a model with re-initialised weights: near 0 means the explanations depend on what the model learned (passed: mean |Spearman| below 0.2; not resolved: its 95% bootstrap interval over the cases reaches across 0.2, too few cases to tell). Anatomy score: Spearman between the image map's magnitude and the input intensity; a map that follows the anatomy scores high for both models.</p>
  {%- endif %}
  {%- if result.convergence_delta %}
  <p class="small">Integrated Gradients convergence: |delta| median {{ result.convergence_delta.abs_median | sci }}, max {{ result.convergence_delta.abs_max | sci }}; relative to |f(x) - f(baseline)|: median {{ result.convergence_delta.relative_median | num }}.</p>
  {%- endif %}
  {%- set T = result.ground_truth %}
  {%- if T %}
  <h4>Against the planted ground truth</h4>
  <table>
    <tr><th>Check</th><th class="num">cases</th><th class="num">score</th><th class="num">chance</th></tr>
    <tr><td>image: attribution mass inside the lesion</td><td class="num">{{ T.image.lesion_cases.n_cases }}</td><td class="num">{{ T.image.lesion_cases.mass_share_in_lesion | num }}</td><td class="num">{{ T.image.lesion_cases.mass_share_chance | num }}</td></tr>
    <tr><td>image: pointing game (peak in the lesion)</td><td class="num">{{ T.image.lesion_cases.n_cases }}</td><td class="num">{{ T.image.lesion_cases.pointing_game | num }}</td><td></td></tr>
    <tr><td>tabular: causal features ranked above the others (AUC)</td><td class="num">{{ T.tabular.n_cases }}</td><td class="num">{{ T.tabular.ranking_auc_causal_vs_noncausal | num }}</td><td class="num">0.500</td></tr>
    <tr><td>tabular: top feature is causal</td><td class="num">{{ T.tabular.n_cases }}</td><td class="num">{{ T.tabular.top_feature_causal | num }}</td><td class="num">{{ T.tabular.top_feature_causal_chance | num }}</td></tr>
    {%- for status in ["affirmed", "negated"] %}
    <tr><td>text: top word in a planted {{ status }} phrase</td><td class="num">{{ T.text[status].n_cases }}</td><td class="num">{{ T.text[status].top_word_in_phrase | num }}</td><td class="num">{{ T.text[status].chance | num }}</td></tr>
    <tr><td>text: top phrase (|attribution|) is a planted {{ status }} phrase</td><td class="num">{{ T.text[status].n_cases }}</td><td class="num">{{ T.text[status].top_phrase_is_planted | num }}</td><td class="num">{{ T.text[status].phrase_chance | num }}</td></tr>
    <tr><td>text: the phrase that {{ "raises" if status == "affirmed" else "lowers" }} the risk most is a planted {{ status }} phrase</td><td class="num">{{ T.text[status].n_cases }}</td><td class="num">{{ T.text[status].top_signed_phrase_is_planted | num }}</td><td></td></tr>
    {%- endfor %}
  </table>
  {%- endif %}
  {%- endfor %}
  {%- if not E.ground_truth_available %}<p class="small muted">Ground-truth scores: {{ E.ground_truth_reason }}.</p>{% endif %}
  {%- for w in E.ground_truth_warnings or [] %}<p class="small"><span class="flag">Ground truth skipped:</span> {{ w }}</p>{% endfor %}
  {%- if figures.deletion %}<figure><img src="{{ figures.deletion }}" alt="Deletion curves"><figcaption>Deletion curves of the {{ E.primary_method | replace("_", " ") }} attributions.</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set V = S.clinician_review %}
<section id="clinician_review">
  {{ heading("clinician_review") }}
  {%- if V.status == "ok" %}
  <p>{{ V.n_verdicts | count }} latest verdicts by {{ V.n_reviewers }} reviewer(s) on {{ V.n_cases_reviewed | count }} cases of run {{ V.run_id }}, model version <span class="mono">{{ V.model_version }}</span>
    {%- if V.excluded_other_model_versions %}; {{ V.excluded_other_model_versions }} verdict(s) on other model versions left out{% endif %}
    {%- if V.excluded_unknown_cases %}; {{ V.excluded_unknown_cases }} on cases not in the predictions left out{% endif %}.</p>
  <table>
    <tr>{% for v, n in V.verdict_counts.items() %}<th class="num">{{ v }}</th>{% endfor %}<th class="num">agreement with the model</th><th>interval</th></tr>
    <tr>{% for v, n in V.verdict_counts.items() %}<td class="num">{{ n }}</td>{% endfor %}<td class="num">{{ V.agreement.estimate | pct }}</td><td>{{ V.agreement.low | pair(V.agreement.high, "pct") }}</td></tr>
  </table>
  <p class="small muted">Agreement = agree / (agree + disagree), {{ V.alpha | level }} Wilson interval; unsure verdicts: {{ V.unsure_share | pct }}. Cases with several reviewers: {{ V.multiple_reviewers.cases }}, unanimous: {{ V.multiple_reviewers.unanimous }}. Mean confidence {{ V.confidence.mean | num(2) }} of 5.</p>
  {%- for title, rows in [("By whether the model was right", V.by_model_outcome), ("By the model's prediction", V.by_prediction)] %}
  {%- if rows %}
  <h4>{{ title }}</h4>
  <table>
    <tr><th></th><th class="num">verdicts</th><th class="num">agree</th><th class="num">disagree</th><th class="num">unsure</th><th class="num">disagree rate</th><th>interval</th></tr>
    {%- for row in rows %}<tr><td>{{ row.group }}</td><td class="num">{{ row.n_verdicts }}</td><td class="num">{{ row.agree }}</td><td class="num">{{ row.disagree }}</td><td class="num">{{ row.unsure }}</td><td class="num">{{ row.disagree_rate.estimate | pct }}</td><td>{{ row.disagree_rate.low | pair(row.disagree_rate.high, "pct") }}</td></tr>{% endfor %}
  </table>
  {%- endif %}
  {%- endfor %}
  <h4>Disagreement by subgroup</h4>
  {%- for block in V.by_subgroup %}
  <table>
    <tr><th>{{ block.attribute }}</th><th class="num">verdicts</th><th class="num">cases</th><th class="num">disagree</th><th class="num">disagree rate</th><th>interval</th><th>flag</th></tr>
    {%- for row in block.groups %}<tr{% if row.too_small %} class="flagged"{% endif %}><td>{{ row.group }}</td><td class="num">{{ row.n_verdicts }}</td><td class="num">{{ row.n_cases }}</td><td class="num">{{ row.disagree }}</td><td class="num">{{ row.disagree_rate.estimate | pct }}</td><td>{{ row.disagree_rate.low | pair(row.disagree_rate.high, "pct") }}</td><td class="small">{% if row.too_small %}<span class="flag">too small</span>: {{ row.reason }}{% endif %}</td></tr>{% endfor %}
  </table>
  {%- endfor %}
  {%- if V.helpful_explanations %}
  <p>Explanations named helpful: {% for k, n in V.helpful_explanations.items() %}{{ k }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>
  {%- endif %}
  <h4>Comments ({{ V.comments | length }})</h4>
  <p class="small muted">Reviewers appear as R1, R2, ...; identifiers typed into comments were replaced by placeholders ({{ V.comments_scrubbed_spans }} span(s)).</p>
  {%- if V.comments %}
  <table>
    <tr><th>Case</th><th>Reviewer</th><th>Date</th><th>Verdict</th><th class="num">Confidence</th><th>Diagnosis</th><th>Comment</th></tr>
    {%- for c in V.comments %}<tr><td class="mono">{{ c.case_id }}</td><td>{{ c.reviewer }}</td><td>{{ c.date }}</td><td>{{ c.verdict }}</td><td class="num">{{ c.confidence }}</td><td>{{ c.diagnosis }}</td><td>{% if c.comment %}<blockquote>{{ c.comment }}</blockquote>{% endif %}</td></tr>{% endfor %}
  </table>
  {%- endif %}
  {%- endif %}
</section>

{%- set X = S.comparison %}
<section id="comparison">
  {{ heading("comparison") }}
  {%- if X.status == "ok" %}
  <p>{{ X.runs[0].name }} (this run, A) against {{ X.runs[1].name }} (B) on the {{ X.n | count }} labelled {{ X.split }} cases both predicted ({{ X.n_positive | count }} positive){% if X.only_in_this_run or X.only_in_other_run %}; {{ X.only_in_this_run }} only in A, {{ X.only_in_other_run }} only in B{% endif %}.</p>
  <table>
    <tr><th>Run</th><th>model version</th><th class="num">AUROC</th><th>interval</th><th class="num">AUPRC</th><th>interval</th><th class="num">Brier</th><th>interval</th></tr>
    {%- for r in X.runs %}<tr><td>{{ r.name }}</td><td class="mono">{{ r.model_version }}</td><td class="num">{{ r.auroc.estimate | num }}</td><td>{{ r.auroc | bounds }}</td><td class="num">{{ r.auprc.estimate | num }}</td><td>{{ r.auprc | bounds }}</td><td class="num">{{ r.brier.estimate | num }}</td><td>{{ r.brier | bounds }}</td></tr>{% endfor %}
  </table>
  <table>
    <tr><th>Difference A - B</th><th class="num">estimate</th><th>interval</th><th class="num">p (two-sided)</th></tr>
    {%- for name, d in X.difference.items() %}<tr><td>{{ {"auroc": "AUROC", "auprc": "AUPRC", "brier": "Brier score"}.get(name, name) }}</td><td class="num">{{ d.estimate | signed }}</td><td>{{ d | bounds }}</td><td class="num">{{ d.p_value | num }}</td></tr>{% endfor %}
  </table>
  <p class="small muted">{{ X.alpha | level }} paired {{ X.difference.auroc.method }} ({{ X.n_resamples | count }} resamples, seed {{ X.seed }}): both models scored on the same resampled cases.</p>
  {%- if figures.comparison %}<figure><img src="{{ figures.comparison }}" alt="ROC curves of both runs"><figcaption>ROC curves of both runs on the shared cases.</figcaption></figure>{% endif %}
  {%- endif %}
</section>

{%- set E = S.external_validation %}
<section id="external_validation">
  {{ heading("external_validation") }}
  {%- if E.status == "ok" %}
  <p>The model on site <strong>{{ E.site }}</strong> ({{ E.external.n | count }} scored cases, {{ E.external.n_positive | count }} positive) beside its own {{ E.internal_split }} split ({{ E.internal.n | count }} cases).{% if E.bayes_auroc is not none %} Bayes-optimal AUROC on the external cases: {{ E.bayes_auroc | num }}.{% endif %}</p>
  <table>
    <tr><th></th><th class="num">n</th><th class="num">prevalence</th><th class="num">AUROC</th><th>interval</th><th class="num">Brier</th><th>interval</th><th class="num">ECE</th><th>interval</th><th class="num">mean predicted - observed</th><th>interval</th><th class="num">slope</th><th class="num">intercept</th></tr>
    {%- for name, r in [("internal", E.internal), ("external", E.external)] %}<tr><td>{{ name }}</td><td class="num">{{ r.n | count }}</td><td class="num">{{ r.prevalence | num }}</td><td class="num">{{ r.auroc.estimate | num }}</td><td>{{ r.auroc | bounds }}</td><td class="num">{{ r.brier.estimate | num }}</td><td>{{ r.brier | bounds }}</td><td class="num">{{ r.ece.estimate | num }}</td><td>{{ r.ece | bounds }}</td><td class="num">{{ r.citl.estimate | signed }}</td><td>{{ r.citl | bounds }}</td><td class="num">{{ r.calibration_slope | num }}</td><td class="num">{{ r.calibration_intercept | num }}</td></tr>{% endfor %}
  </table>
  <p class="small muted">{{ E.method }}.</p>
  <h3>Drift</h3>
  {%- if E.drift.available %}
  <p class="small muted">{{ E.drift.correction }}.{% if E.drift.caveat %} {{ E.drift.caveat }}.{% endif %}</p>
  {%- if E.drift.flags %}<ul>{% for f in E.drift.flags %}<li>{{ f }}</li>{% endfor %}</ul>{% else %}<p>Nothing flagged.</p>{% endif %}
  {%- if E.drift.domain_auroc is not none %}<p>A classifier telling the training cases from this site's reaches AUROC {{ E.drift.domain_auroc | num }} (0.5: no difference found; tabular values and modality presence, cross-validated).</p>{% endif %}
  <table>
    <tr><th>Feature</th><th class="num">standardised difference</th><th class="num">p</th><th class="num">Holm-adjusted p</th><th>flag</th></tr>
    {%- for r in E.drift.features %}<tr><td>{{ r.feature }}</td><td class="num">{{ r.standardised_difference | signed }}</td><td class="num">{{ r.p_value | num }}</td><td class="num">{{ r.p_adjusted | num }}</td><td>{% if r.flag %}<span class="flag">shifted</span>{% endif %}</td></tr>{% endfor %}
  </table>
  {%- else %}<p class="unavailable">Not available: {{ E.drift.reason }}</p>{% endif %}
  <h3>Local recalibration</h3>
  {%- if E.recalibration.methods %}
  <table>
    <tr><th>Method</th><th class="num">mean predicted - observed</th><th>interval</th><th class="num">slope</th><th>interval</th><th class="num">intercept</th><th>interval</th><th class="num">ECE</th><th>interval</th><th class="num">ECE of a calibrated model</th></tr>
    {%- for r in E.recalibration.methods %}<tr><td>{{ r.method }}</td><td class="num">{{ r.citl.estimate | signed }}</td><td>{{ r.citl | bounds }}</td><td class="num">{{ r.calibration_slope.estimate | num }}</td><td>{{ r.calibration_slope | bounds }}</td><td class="num">{{ r.calibration_intercept.estimate | signed }}</td><td>{{ r.calibration_intercept | bounds }}</td><td class="num">{{ r.ece.estimate | num }}</td><td>{{ r.ece | bounds }}</td><td class="num">{{ r.ece_perfect | num }}</td></tr>{% endfor %}
  </table>
  <p class="small muted">{{ E.recalibration.interval_method }}; {{ E.recalibration.n_local_sample | count }} labelled local cases, {{ E.recalibration.n_scored | count }} scored.{% if E.recalibration.saved %} Saved: {{ E.recalibration.saved }}.{% endif %}</p>
  {%- else %}<p>No recalibration was computed.</p>{% endif %}
  <h3>TRIPOD+AI items answered</h3>
  <table>{% for t in E.tripod_ai %}<tr><td>{{ t.item }}</td><td>{{ t.topic }}</td><td>{{ t.covers }}</td></tr>{% endfor %}</table>
  {%- endif %}
</section>

</main>
</div>
<footer>Generated by mmdx {{ doc.mmdx_version }} from the run directory and, where stated, the review store. Every number on this page is in audit_report.json.</footer>
</body>
</html>
"""
