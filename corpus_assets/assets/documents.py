"""Shard-level document assets: one factory, because every such asset has the same shape.

An asset reads its (dump, shard) partition of the upstream table, calls one function of
``corpus_assets.stages``, and returns the retention metadata plus the result of the
conservation check, recounted from the files it just wrote. The partition key's dump name
is validated (``split_shard_key``) before the stage runs, so a bad one writes nothing. ``code_version`` carries a
fingerprint of the settings the stage uses, so a changed setting marks this asset and
everything downstream stale.
"""


import inspect
from typing import Callable, Optional

import dagster as dg

from corpus_assets.metadata import retention_metadata
from corpus_assets.partitions import DUMP_DIM, split_shard_key
from corpus_assets.resources import CorpusStoreResource, CrawlSourceResource
from corpus_assets.stages import StageReport, documents_path, verify_conservation
from corpus_assets.storage import PartitionIntegrityError

CONSERVATION_CHECK = "conservation"


def conservation_spec(asset_name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CONSERVATION_CHECK,
        asset=asset_name,
        blocking=True,
        description="docs_in == docs_out + docs_removed, and the removal reasons sum to "
        "docs_removed; recounted from the partition's stored documents and removal ledger.",
    )


def conservation_result(store, asset_name: str, dump: str, shard: str, upstream: Optional[str]) -> dg.AssetCheckResult:
    try:
        passed, facts = verify_conservation(store, asset_name, dump, shard, upstream)
    except PartitionIntegrityError as exc:
        # A partition (this one or its upstream) whose parts disagree fails the check, saying why.
        return dg.AssetCheckResult(check_name=CONSERVATION_CHECK, passed=False,
                                   metadata={"problem": dg.MetadataValue.text(str(exc))})
    return dg.AssetCheckResult(
        check_name=CONSERVATION_CHECK,
        passed=passed,
        metadata={k: (dg.MetadataValue.bool(v) if isinstance(v, bool) else dg.MetadataValue.int(v)) for k, v in facts.items()},
    )


def shard_document_asset(
    *,
    name: str,
    stage: Callable[..., StageReport],
    upstream: Optional[str],
    partitions_def: dg.PartitionsDefinition,
    code_version: str,
    description: str,
    deps: list,
    group_name: str,
    needs_crawl_source: bool = False,
    needs_known_dumps: bool = False,
    automation_condition: Optional[dg.AutomationCondition] = dg.AutomationCondition.eager(),
) -> dg.AssetsDefinition:
    """Build a (dump, shard)-partitioned asset that runs ``stage`` on its partition.

    ``stage(store, dump, shard)`` (or ``stage(source, store, dump, shard)`` when
    ``needs_crawl_source``) must write the partition and return its ``StageReport``.
    With ``needs_known_dumps`` it also gets ``known_dumps``: every dump partition, for
    stages that look at earlier dumps.
    """

    takes_log = "log" in inspect.signature(stage).parameters

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=deps,
        code_version=code_version,
        description=description,
        group_name=group_name,
        check_specs=[conservation_spec(name)],
        automation_condition=automation_condition,
        kinds={"parquet"},
    )
    def _asset(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
               crawl_source: CrawlSourceResource) -> dg.MaterializeResult:
        dump, shard = split_shard_key(context)
        store = corpus_store.get_store()
        # Progress lines go to the run's log page (stages that take a logger).
        kwargs = {"log": context.log} if takes_log else {}
        if needs_crawl_source:
            report = stage(crawl_source.get_source(), store, dump, shard, **kwargs)
        elif needs_known_dumps:
            report = stage(store, dump, shard, known_dumps=context.instance.get_dynamic_partitions(DUMP_DIM), **kwargs)
        else:
            report = stage(store, dump, shard, **kwargs)
        context.log.info(
            f"{name} {dump}|{shard}: {report.docs_in} in, {report.docs_out} out, "
            f"{report.docs_removed} removed in {report.seconds:.1f}s"
        )
        if report.extra.get("warc_files_without_responses"):
            # Nothing was removed, so nothing else would show that these files gave nothing.
            context.log.warning(
                f"{name} {dump}|{shard}: {report.extra['warc_files_without_responses']} WARC file(s) hold "
                f"no response record (WET? resource-only?): records_by_type={report.extra.get('records_by_type')}, "
                f"files {report.extra.get('warc_files_without_responses_sample')}"
            )
        metadata = retention_metadata(report, store.uri(documents_path(name, dump, shard)))
        for key, value in report.extra.items():
            metadata[key] = value
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[conservation_result(store, name, dump, shard, upstream)],
        )

    return _asset
