"""The schema, as numbered migrations applied on open (sqlite-utils ``Migrations``).

A migration's name is its identity: never edit, rename or reorder one that has shipped; add a new one.
Stages that need more tables or columns append a migration here (``m0NN_<what>``).
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("tooldistill")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db["settings"].create({"key": str, "value": str}, pk="key")
    db["catalogs"].create({"hash": str, "name": str, "body": str, "created_at": str}, pk="hash")
    db["queries"].create(
        {
            "id": int, "text": str, "norm_hash": str, "source": str, "template_id": str, "category": str,
            "meta": str, "hint": str,
            # gold: template-generated or imported as verified; canonical JSON of the calls
            "gold_calls": str, "gold_hash": str, "gold_source": str, "gold_catalog_hash": str,
            "created_at": str,
        },
        pk="id",
    )
    db["queries"].create_index(["norm_hash"], unique=True)
    db["queries"].create_index(["source"])
    db["labels"].create(
        {
            "id": int, "query_id": int, "source": str, "model": str, "purpose": str, "job_id": int,
            "prompt_version": str, "catalog_hash": str, "calls": str, "label_hash": str, "reason": str,
            "raw": str, "valid": int, "reject_reason": str, "created_at": str,
        },
        pk="id", foreign_keys=[("query_id", "queries", "id")],
    )
    db["labels"].create_index(["query_id"])
    db["labels"].create_index(["prompt_version", "catalog_hash"])
    db["jobs"].create(
        {
            "id": int, "query_id": int, "purpose": str, "state": str, "attempts": int, "model": str,
            "prompt_version": str, "catalog_hash": str, "params": str, "lease_token": str, "leased_until": float,
            "leased_by": str, "last_error": str, "batch_id": str, "created_at": str, "updated_at": str,
            "finished_at": str,
        },
        pk="id", foreign_keys=[("query_id", "queries", "id")], defaults={"attempts": 0, "state": "pending"},
    )
    db["jobs"].create_index(["state"])
    db["jobs"].create_index(["query_id", "purpose"])
    db["attempts"].create(
        {
            "id": int, "job_id": int, "slot_id": str, "project": str, "model": str, "started_at": str,
            "latency_ms": float, "outcome": str, "status_code": int, "error_kind": str, "message": str,
            "prompt_tokens": int, "output_tokens": int, "total_tokens": int,
        },
        pk="id",
    )
    db["attempts"].create_index(["job_id"])
    db["slots"].create(
        {
            "id": str, "fingerprint": str, "env_var": str, "project": str, "model": str, "state": str,
            "until": float, "reason": str, "last_used_at": float, "requests": int, "created_at": str,
        },
        pk="id",
    )
    db["buckets"].create(
        {
            "id": str, "project": str, "model": str, "rpm": int, "rpd": int, "state": str, "until": float,
            "day": str, "requests_today": int, "last_request_at": float, "reason": str,
        },
        pk="id",
    )
    db["response_cache"].create(
        {"key": str, "model": str, "prompt_version": str, "query_hash": str, "response": str, "created_at": str},
        pk="key",
    )
    db["reviews"].create(
        {
            "id": int, "query_id": int, "flag_id": int, "decision": str, "calls": str, "label_hash": str,
            "note": str, "reviewer": str, "created_at": str,
        },
        pk="id", foreign_keys=[("query_id", "queries", "id")],
    )
    db["reviews"].create_index(["query_id"])
    db["adjudications"].create(
        {
            "id": int, "query_id": int, "calls": str, "label_hash": str, "method": str, "votes": str,
            "created_at": str,
        },
        pk="id", foreign_keys=[("query_id", "queries", "id")],
    )
    db["adjudications"].create_index(["query_id"])
    db["runs"].create(
        {
            "id": str, "kind": str, "status": str, "created_at": str, "finished_at": str, "config": str,
            "dataset_version": str, "parent_run_id": str, "base_model": str, "metrics": str,
            "artifact_path": str, "notes": str,
        },
        pk="id",
    )
    db["predictions"].create(
        {
            "id": int, "run_id": str, "query_id": int, "split": str, "raw": str, "calls": str, "valid": int,
            "error": str, "latency_ms": float,
        },
        pk="id", foreign_keys=[("run_id", "runs", "id")],
    )
    db["predictions"].create_index(["run_id"])


@MIGRATIONS()
def m002_dataset_versions(db: Database) -> None:
    # A dataset version is a content-hashed split: its id is the hash of its members and their labels.
    db["dataset_versions"].create(
        {
            "id": str, "name": str, "created_at": str, "params": str, "lineage": str, "counts": str,
            "report": str, "catalog_hash": str,
        },
        pk="id",
    )
    db["split_members"].create(
        {
            "version_id": str, "query_id": int, "split": str, "calls": str, "label_hash": str,
            "label_source": str, "group_id": str,
        },
        pk=("version_id", "query_id"), foreign_keys=[("version_id", "dataset_versions", "id")],
    )
    db["split_members"].create_index(["version_id", "split"])


@MIGRATIONS()
def m010_distill_queue(db: Database) -> None:
    # Queue dedup: at most one live or done job per (query, purpose, prompt version, catalogue, model, params);
    # failed/dead jobs stay out of the index so an explicit re-enqueue can add a fresh one.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS jobs_dedup ON jobs (query_id, purpose, coalesce(prompt_version, ''),"
        " coalesce(catalog_hash, ''), coalesce(model, ''), coalesce(params, ''))"
        " WHERE state IN ('pending', 'leased', 'done')"
    )
    db.execute("CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (state, purpose, id)")
    columns = {
        "jobs": {"cache_hit": int, "available_at": float},
        "buckets": {"backoff": int, "rpm_reported": int, "rpd_reported": int, "updated_at": float},
        "slots": {"backoff": int, "env_var_index": int},
        "attempts": {"purpose": str, "query_id": int, "worker": str, "sent_at": float, "day": str},
    }
    for table, cols in columns.items():
        have = db[table].columns_dict
        for name, typ in cols.items():
            if name not in have:
                db[table].add_column(name, typ)
    db.execute("CREATE INDEX IF NOT EXISTS attempts_bucket_time ON attempts (project, model, sent_at)")
    db.execute("CREATE INDEX IF NOT EXISTS attempts_outcome ON attempts (outcome)")


@MIGRATIONS()
def m050_eval_predictions(db: Database) -> None:
    # How each prediction was read and graded at eval time (against the split's labels), so SQL can slice runs.
    columns = db["predictions"].columns_dict
    for name, kind in (("valid_json", int), ("extracted", int), ("tool_correct", int), ("correct", int),
                       ("created_at", str)):
        if name not in columns:
            db["predictions"].add_column(name, kind)
    db["predictions"].create_index(["run_id", "query_id"], if_not_exists=True)


@MIGRATIONS()
def m040_train_run_inputs(db: Database) -> None:
    # What a run trained on, so `train run --resume` can reload it: {"dataset": version id} or
    # {"data_file": path}, plus the catalogue hash and how many val rows were carved from train.
    if "inputs" not in db["runs"].columns_dict:
        db["runs"].add_column("inputs", str)


@MIGRATIONS()
def m030_audit_runs_and_flags(db: Database) -> None:
    # `curate audit`: one audit_runs row per run (signals, counts, how the flag count was chosen) and one
    # audit_flags row per suspected teacher mislabel; review/relabel/adjudicate move a flag's status along
    # open -> reviewed | relabel -> adjudicated | needs_review.
    if "audit_runs" not in db.table_names():
        db["audit_runs"].create(
            {
                "id": int, "created_at": str, "finished_at": str, "catalog_hash": str, "params": str,
                "signals": str, "n_audited": int, "n_flags": int, "report": str,
            },
            pk="id",
        )
    if "audit_flags" not in db.table_names():
        db["audit_flags"].create(
            {
                "id": int, "run_id": int, "query_id": int, "rank": int, "score": float, "label_id": int,
                "calls": str, "label_hash": str, "suggested_calls": str, "suggested_hash": str,
                "suggested_class": str, "signals": str, "evidence": str, "status": str, "updated_at": str,
            },
            pk="id", foreign_keys=[("run_id", "audit_runs", "id"), ("query_id", "queries", "id")],
            defaults={"status": "open"},
        )
    db["audit_flags"].create_index(["run_id", "rank"], if_not_exists=True)
    db["audit_flags"].create_index(["query_id"], if_not_exists=True)
    db["audit_flags"].create_index(["status"], if_not_exists=True)


@MIGRATIONS()
def m060_scale_batches_and_synthesis(db: Database) -> None:
    # Batch Mode: a batch row (its id is the display name sent to the API) and its members are written before
    # the create request, so a kill at any moment leaves enough to find the batch again (batches.list).
    if not db["batches"].exists():
        db["batches"].create(
            {
                "id": str, "seq": int, "name": str, "model": str, "key_fingerprint": str, "project": str,
                "state": str, "remote_state": str, "purposes": str, "prompt_version": str, "catalog_hash": str,
                "lease_token": str, "request_count": int, "request_bytes": int, "answered": int, "line_errors": int,
                "labels": int, "rejected": int, "requeued": int, "lost": int, "prompt_tokens": int,
                "output_tokens": int, "cost_usd": float, "standard_cost_usd": float, "polls": int, "error": str,
                "created_at": str, "submitted_at": str, "updated_at": str, "finished_at": str, "ingested_at": str,
            },
            pk="id",
        )
        db["batches"].create_index(["state"])
        db["batches"].create_index(["seq"])
    if not db["batch_members"].exists():
        db["batch_members"].create(
            {"batch_id": str, "job_id": int, "query_id": int, "key": str, "state": str, "error": str},
            pk=("batch_id", "job_id"), foreign_keys=[("batch_id", "batches", "id")],
        )
        db["batch_members"].create_index(["job_id"])
    # Synthesis: a coverage plan's cells (tool or class x category x style) with their targets and what arrived.
    if not db["synth_plans"].exists():
        db["synth_plans"].create(
            {"name": str, "catalog_hash": str, "params": str, "created_at": str, "updated_at": str}, pk="name")
    if not db["synth_cells"].exists():
        db["synth_cells"].create(
            {
                "id": str, "plan": str, "tool": str, "category": str, "style": str, "target": int, "requests": int,
                "received": int, "accepted": int, "exact_dups": int, "near_dups": int, "invalid": int,
                "rounds": int, "stale_rounds": int, "state": str, "updated_at": str,
            },
            pk="id", foreign_keys=[("plan", "synth_plans", "name")],
        )
        db["synth_cells"].create_index(["plan"])
    if not db["synth_repeats"].exists():
        # which stored query a rejected duplicate repeated (counted, the duplicate's text itself is not kept)
        db["synth_repeats"].create(
            {"cell_id": str, "query_id": int, "kind": str, "count": int},
            pk=("cell_id", "query_id", "kind"),
        )


@MIGRATIONS()
def m020_curate_dedup(db: Database) -> None:
    # A dedup run clusters the queries of its time (corpus_hash says which); nothing is deleted: a cluster
    # records its members, the one kept as representative, and each member's similarity to it.
    if not db["dedup_runs"].exists():
        db["dedup_runs"].create(
            {
                "id": int, "method": str, "params": str, "created_at": str, "n_queries": int, "max_query_id": int,
                "corpus_hash": str, "n_clusters": int, "n_duplicates": int, "n_oversized": int, "n_pairs": int,
                "seconds": float, "report": str,
            },
            pk="id",
        )
    if not db["dedup_clusters"].exists():
        db["dedup_clusters"].create(
            {
                "id": int, "run_id": int, "kind": str, "representative_id": int, "size": int, "oversized": int,
                "min_similarity": float, "mean_similarity": float,
            },
            pk="id", foreign_keys=[("run_id", "dedup_runs", "id")],
        )
        db["dedup_clusters"].create_index(["run_id"])
    if not db["dedup_members"].exists():
        db["dedup_members"].create(
            {"run_id": int, "cluster_id": int, "query_id": int, "similarity": float, "is_representative": int,
             "duplicate": int},
            pk=("run_id", "query_id"), foreign_keys=[("run_id", "dedup_runs", "id"),
                                                     ("cluster_id", "dedup_clusters", "id")],
        )
        db["dedup_members"].create_index(["cluster_id"])
        db["dedup_members"].create_index(["query_id"])


@MIGRATIONS()
def m070_distill_packing_and_prompts(db: Database) -> None:
    # Packing: a job whose answer inside a packed request was missing or invalid is asked again on its own
    # (jobs.unpack = 1); an attempt row of a packed request says how many queries it carried (pack_size).
    if "unpack" not in db["jobs"].columns_dict:
        db["jobs"].add_column("unpack", int)
    if "pack_size" not in db["attempts"].columns_dict:
        db["attempts"].add_column("pack_size", int)
    # Prompt versions: every distinct teacher prompt a run used (system text, declarations, where it came from),
    # so labels' prompt_version can be read back and `distill prompt show --version` prints what was sent.
    if not db["prompt_versions"].exists():
        db["prompt_versions"].create(
            {"version": str, "system_instruction": str, "declarations": str, "source": str, "examples": int,
             "catalog_hash": str, "created_at": str, "last_used_at": str},
            pk="version",
        )


@MIGRATIONS()
def m080_prediction_confidence(db: Database) -> None:
    # How sure the router was of the answer it gave (the encoder: its probability of the chosen tool set), so a
    # student's eval run can feed the curate audit; NULL where a router reports none (baselines, LLMs, teacher).
    if "confidence" not in db["predictions"].columns_dict:
        db["predictions"].add_column("confidence", float)
