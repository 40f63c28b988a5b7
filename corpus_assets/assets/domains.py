"""Domain subsets as assets: FineFineWeb's coarse-to-fine domain classification over
``rw_deduped``. The work is in ``corpus_assets.domain_stages``; these definitions wire
partitions, dependencies, checks and metadata.

    rw_deduped ──> domain_seed_labels ──> domain_classifiers ──> domain_labels ──> domain_subsets
    (dump x shard)      (dump)            (dump; every round)    (dump x shard)   (dump x domain)
                                                                       │
                              domain_benchmark_similarity, domain_url_overlap (unpartitioned)

``domain_subsets`` is partitioned by dump x domain (the taxonomy's domains plus
``unclassified``) so a data lead selects one domain of one dump in the UI. Dagster's
multi-partitions allow two dimensions, which rules out dump x shard x domain; the shard
is a column of the subset table instead. 68 domains x ~100 dumps stays far below the
partition counts where the UI slows down (tens of thousands per asset). A subset holds
doc_ids (and shard, score, chars) only: the text is read from ``rw_deduped`` by id.
"""


import hashlib
from typing import Optional

import dagster as dg

from corpus_assets import domain_stages
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.metadata import records_table
from corpus_assets.partitions import DUMP_DIM, dump_partitions, shard_keys, shard_partitions_def, shard_to_dump, split_shard_key
from corpus_assets.resources import CorpusStoreResource, LlmAnnotatorResource, SentenceEncoderResource
from corpus_assets.steps.domains.taxonomy import UNCLASSIFIED, Taxonomy, load_taxonomy

DOMAIN_GROUP = "domains"
DOMAIN_DIM = "domain"
# Bump when a stage's code changes what it writes; settings and taxonomy are fingerprinted.
CODE_REVISION = {
    "domain_seed_labels": "1", "domain_classifiers": "1", "domain_labels": "1", "domain_subsets": "1",
    "domain_benchmark_similarity": "1", "domain_url_overlap": "1",
}
LABELS_CHECK = "every_document_labelled_once"
SUBSET_CHECK = "conservation"

ROUND_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("round", "int"), dg.TableColumn("domain", "string"), dg.TableColumn("docs", "int"),
    dg.TableColumn("gained", "int"), dg.TableColumn("lost", "int"), dg.TableColumn("heldout_support", "int"),
    dg.TableColumn("precision", "float"), dg.TableColumn("recall", "float"),
])
COUNT_SCHEMA = dg.TableSchema(columns=[dg.TableColumn("domain", "string"), dg.TableColumn("docs", "int")])
SEED_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("domain", "string"), dg.TableColumn("doi", "int"), dg.TableColumn("doni", "int"),
    dg.TableColumn("doi_mean_confidence", "float"),
])
SIMILARITY_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("domain", "string"), dg.TableColumn("benchmark", "string"), dg.TableColumn("sample_docs", "int"),
    dg.TableColumn("mmd", "float"),
    dg.TableColumn("sliced_wasserstein", "float"),
])
TFIDF_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("domain", "string"), dg.TableColumn("url", "string"), dg.TableColumn("count", "int"),
    dg.TableColumn("tf", "float"), dg.TableColumn("idf", "float"), dg.TableColumn("tfidf", "float"),
])
OVERLAP_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("domain_a", "string"), dg.TableColumn("domain_b", "string"),
    dg.TableColumn("shared_urls", "int"), dg.TableColumn("jaccard", "float"),
])


def domain_names(config: PipelineConfig) -> list[str]:
    return load_taxonomy(config.domains.taxonomy_path).names + [UNCLASSIFIED]


def domain_partitions_def(config: PipelineConfig, taxonomy: Optional[Taxonomy] = None) -> dg.MultiPartitionsDefinition:
    names = taxonomy.names + [UNCLASSIFIED] if taxonomy else domain_names(config)
    return dg.MultiPartitionsDefinition({
        DUMP_DIM: dump_partitions, DOMAIN_DIM: dg.StaticPartitionsDefinition(names)})


def subset_partition_key(dump: str, domain: str) -> str:
    return str(dg.MultiPartitionKey({DUMP_DIM: dump, DOMAIN_DIM: domain}))


def _benchmark_fingerprint(config: PipelineConfig) -> tuple:
    """The benchmark folder and the content of each benchmark file in it (absent: "")."""
    folder = domain_stages.benchmark_dir(config)
    hashes = []
    for name in config.domains.benchmark_files:
        try:
            hashes.append(hashlib.sha256((folder / name).read_bytes()).hexdigest()[:12])
        except OSError:
            hashes.append("")
    return (str(folder), tuple(hashes))


def build_domain_assets(config: PipelineConfig, taxonomy: Optional[Taxonomy] = None,
                        sentence_encoder: Optional[SentenceEncoderResource] = None,
                        llm: Optional[LlmAnnotatorResource] = None) -> list:
    """``taxonomy``: the loaded taxonomy when the caller has it (a large one takes seconds
    to parse); ``sentence_encoder``/``llm``: the resources the definitions bind, whose
    overrides go into the code versions."""
    cfg = config.domains
    taxonomy = taxonomy or load_taxonomy(cfg.taxonomy_path)
    shards = shard_keys(config.num_shards)
    eager = dg.AutomationCondition.eager()
    encoder_path = (sentence_encoder.model_path if sentence_encoder else None) or cfg.encoder_path
    llm_model = (llm.model if llm else None) or cfg.llm_model
    # What every domain asset's output depends on besides its inputs: the taxonomy's
    # content, the classifier settings and the encoder (not the device: same vectors)
    # with its truncation, and the LLM model after the resource's override.
    seed_version = (taxonomy.content_hash, encoder_path, cfg.encoder_max_chars, cfg.annotator, cfg.seed_min_similarity,
                    cfg.seed_margin, cfg.seed_negative_max_similarity, cfg.heldout_fraction, cfg.train_max_docs,
                    llm_model if cfg.annotator == "llm" else "", cfg.llm_prompt_version if cfg.annotator == "llm" else "")
    train_version = seed_version + (cfg.rounds, cfg.coarse_threshold, cfg.coarse_epochs, cfg.coarse_lr,
                                    cfg.coarse_word_ngrams, cfg.coarse_dim, cfg.coarse_min_count, cfg.coarse_min_examples, cfg.fine_threshold,
                                    cfg.fine_l2, cfg.fine_epochs)

    def version(asset: str, *parts) -> str:
        return f"{CODE_REVISION[asset]}-{fingerprint(*parts)}"

    @dg.asset(
        name="domain_seed_labels", partitions_def=dump_partitions,
        deps=[dg.AssetDep("rw_deduped", partition_mapping=shard_to_dump)],
        code_version=version("domain_seed_labels", *seed_version), group_name=DOMAIN_GROUP, kinds={"parquet"},
        automation_condition=eager,
        description=f"DoI/DoNI seed labels with confidence ({taxonomy.name}, {len(taxonomy.domains)} domains): "
        f"host rules from the taxonomy's hints, then the {cfg.annotator} annotator (embedded: zero-shot "
        "similarity to the domain descriptions with a margin, abstaining below it). Embeddings kept for reuse.",
    )
    def domain_seed_labels(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                           sentence_encoder: SentenceEncoderResource, llm: LlmAnnotatorResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        dump = context.partition_key
        annotator = None
        if cfg.annotator == "llm":
            model = llm.model or cfg.llm_model
            cache = domain_stages.load_llm_cache(store, model, cfg.llm_prompt_version)
            annotator = llm.get_annotator(cfg, taxonomy.names, cache=cache)
        report = domain_stages.build_domain_seed_labels(store, dump, shards, config, taxonomy,
                                                        sentence_encoder.get_encoder(cfg), annotator)
        seeds = [{"domain": d, **v} for d, v in sorted(report["per_domain"].items())]
        return dg.MaterializeResult(metadata={
            "docs_read": report["docs_read"], "docs_embedded": report["docs_embedded"],
            "empty_text": report["empty_text"], "doi_seeds": report["doi_seeds"],
            "doni_all_seeds": report["doni_all_seeds"], "abstained": report["abstained"],
            "heldout": report["heldout"], "sources": dg.MetadataValue.json(report["sources"]),
            "domains_with_seeds": len(report["domains_with_seeds"]),
            "seed_sets": records_table(seeds, SEED_SCHEMA), "annotator": report["annotator"],
            "annotator_stats": dg.MetadataValue.json(report["annotator_stats"]),
            "taxonomy_hash": taxonomy.content_hash,
        })

    @dg.asset(
        name="domain_classifiers", partitions_def=dump_partitions,
        deps=["domain_seed_labels", dg.AssetDep("rw_deduped", partition_mapping=shard_to_dump)],
        code_version=version("domain_classifiers", *train_version), group_name=DOMAIN_GROUP,
        kinds={"fasttext", "parquet"}, automation_condition=eager,
        description=f"The trained classifiers, every round kept: a fine head on encoder embeddings (trained once "
        f"on the seeds, frozen) and, for each of {cfg.rounds} rounds, a fastText one-vs-all coarse model trained on "
        "the seeds plus the previous round's fine-recalled (+) and dropped (-) documents.",
    )
    def domain_classifiers(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = domain_stages.build_domain_classifiers(store, context.partition_key, shards, config, taxonomy)
        rows = [{"round": r["round"], "domain": d, "docs": v["docs"], "gained": v["gained"], "lost": v["lost"],
                 "heldout_support": v["support"], "precision": v["precision"], "recall": v["recall"]}
                for r in report["rounds"] for d, v in sorted(r["per_domain"].items())]
        return dg.MaterializeResult(metadata={
            "train_docs": report["train_docs"], "rounds": len(report["rounds"]), "trained": report["trained"],
            "per_round": records_table(rows, ROUND_SCHEMA),
            "round_summary": dg.MetadataValue.json([{k: r[k] for k in ("round", "coarse_train_docs",
                                                     "coarse_positive_share", "classified")} for r in report["rounds"]]),
            "fine_classes": len(report["fine_classes"]),
        })

    @dg.asset(
        name="domain_labels", partitions_def=shard_partitions_def(config.num_shards),
        deps=["rw_deduped", dg.AssetDep("domain_classifiers", partition_mapping=shard_to_dump),
              dg.AssetDep("domain_seed_labels", partition_mapping=shard_to_dump)],
        code_version=version("domain_labels", *train_version), group_name=DOMAIN_GROUP, kinds={"parquet"},
        automation_condition=eager,
        check_specs=[dg.AssetCheckSpec(LABELS_CHECK, asset="domain_labels", blocking=True,
                                       description="Every rw_deduped document of the shard has exactly one label row "
                                       "(a domain or unclassified) and no other doc_id has one.")],
        description="Attribute table doc_id -> domain, score, runner-up domain and score, round, reason, chars "
        "(no text): the final round's coarse (fastText) then fine (encoder head) decision for every document.",
    )
    def domain_labels(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                      sentence_encoder: SentenceEncoderResource) -> dg.MaterializeResult:
        dump, shard = split_shard_key(context)
        store = corpus_store.get_store()
        report = domain_stages.build_domain_labels(store, dump, shard, config, sentence_encoder.get_encoder(cfg),
                                                   log=context.log)
        passed, facts = domain_stages.verify_labels(store, dump, shard)
        counts = [{"domain": d, "docs": n} for d, n in sorted(report["by_domain"].items(), key=lambda kv: -kv[1])]
        return dg.MaterializeResult(
            metadata={
                "docs": report["docs"], "classified": report["classified"], "dagster/row_count": report["docs"],
                "fine_stage_docs": report["fine_stage_docs"], "fine_stage_share": report["fine_stage_share"],
                "by_domain": records_table(counts, COUNT_SCHEMA),
                "unclassified_reasons": dg.MetadataValue.json(report["unclassified_reasons"]),
                "final_round": report["final_round"],
                "path": dg.MetadataValue.path(store.uri(domain_stages.labels_path(dump, shard))),
            },
            check_results=[dg.AssetCheckResult(check_name=LABELS_CHECK, passed=passed, metadata=facts)],
        )

    @dg.asset(
        name="domain_subsets", partitions_def=domain_partitions_def(config, taxonomy),
        deps=[dg.AssetDep("domain_labels", partition_mapping=dg.MultiPartitionMapping({
            DUMP_DIM: dg.DimensionPartitionMapping(DUMP_DIM, dg.IdentityPartitionMapping())}))],
        code_version=version("domain_subsets", *train_version), group_name=DOMAIN_GROUP, kinds={"parquet"},
        check_specs=[dg.AssetCheckSpec(SUBSET_CHECK, asset="domain_subsets", blocking=True,
                                       description="The subset holds exactly the documents labelled with its domain, "
                                       "and every rw_deduped document of the dump has exactly one label, so "
                                       "documents in = the sum over the dump's subsets (unclassified included).")],
        description="One domain of one dump (the taxonomy's domains plus `unclassified`): doc_id, shard, score, chars. "
        "Join rw_deduped on doc_id for the text.",
    )
    def domain_subsets(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        dump, domain = keys[DUMP_DIM], keys[DOMAIN_DIM]
        store = corpus_store.get_store()
        report = domain_stages.build_domain_subset(store, dump, domain, shards)
        passed, facts = domain_stages.verify_subset(store, dump, domain, shards, taxonomy.names + [UNCLASSIFIED])
        return dg.MaterializeResult(
            metadata={"docs": report["docs"], "chars": report["chars"], "dagster/row_count": report["docs"],
                      "dump_docs": report["dump_docs"], "share_of_dump": report["share_of_dump"],
                      "retention": report["share_of_dump"],
                      "cumulative_retention": report["cumulative_retention"],
                      "path": dg.MetadataValue.path(store.uri(domain_stages.subset_path(dump, domain)))},
            check_results=[dg.AssetCheckResult(check_name=SUBSET_CHECK, passed=passed, metadata=facts)],
        )

    @dg.asset(
        name="domain_benchmark_similarity", deps=["domain_labels"],
        code_version=version("domain_benchmark_similarity", *train_version, cfg.benchmark_files,
                             *_benchmark_fingerprint(config),
                             cfg.similarity_sample_size, cfg.similarity_min_docs, cfg.sliced_projections),
        group_name=DOMAIN_GROUP, kinds={"json"},
        description="Equal-size embedded samples of each domain (all dumps) and each benchmark (GSM8K, HumanEval): "
        "MMD with an RBF kernel (median-heuristic bandwidth) and sliced Wasserstein-1, as a table and a heatmap.",
    )
    def domain_benchmark_similarity(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                                    sentence_encoder: SentenceEncoderResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = domain_stages.build_domain_benchmark_similarity(
            store, context.instance.get_dynamic_partitions(DUMP_DIM), shards, config, sentence_encoder.get_encoder(cfg))
        meta = {"sample_size": report["sample_size"], "domains_compared": len(report["domains"]),
                "benchmarks": dg.MetadataValue.json(report["benchmarks"]),
                "skipped_domains": dg.MetadataValue.json(report["skipped_domains"]),
                "missing_benchmarks": dg.MetadataValue.json(report["missing_benchmarks"]),
                "kernel": report["kernel"], "wasserstein": report["wasserstein"],
                "distances": records_table(report["rows"], SIMILARITY_SCHEMA)}
        if report.get("bandwidth") is not None:
            meta["bandwidth"] = report["bandwidth"]
        if report.get("heatmap_markdown"):
            meta["heatmap"] = dg.MetadataValue.md(report["heatmap_markdown"])
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(
        name="domain_url_overlap", deps=["domain_labels"],
        code_version=version("domain_url_overlap", *train_version, cfg.url_top_k), group_name=DOMAIN_GROUP,
        kinds={"json"},
        description=f"URL TF-IDF over the top-{cfg.url_top_k} hosts of each domain (TF(U) = count(U)/M over the pooled "
        "top lists, IDF(U) = log(N/K_U)), and the domain pairs that share top hosts.",
    )
    def domain_url_overlap(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = domain_stages.build_domain_url_overlap(store, context.instance.get_dynamic_partitions(DUMP_DIM),
                                                        shards, config)
        return dg.MaterializeResult(metadata={
            "domains": report["domains"], "top_k": report["top_k"], "pooled_occurrences": report["pooled_occurrences"],
            "url_tfidf": records_table(report["rows"], TFIDF_SCHEMA),
            "overlapping_pairs": records_table(report["overlaps"], OVERLAP_SCHEMA),
        })

    return [domain_seed_labels, domain_classifiers, domain_labels, domain_subsets, domain_benchmark_similarity,
            domain_url_overlap]
