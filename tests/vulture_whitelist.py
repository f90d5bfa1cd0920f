"""Names vulture reports as unused that are used in ways it cannot see (a vulture whitelist).

Run by ``tests/test_dead_code.py`` through ``[tool.vulture]`` in ``pyproject.toml``; never
imported. Add a name here only with the reason it is not dead; dead code is deleted instead.
Pydantic validators, ``model_config``, module ``__getattr__`` (lazy re-exports) and the
``atexit`` hook are ignored in the configuration itself.
"""

# ruff: noqa: B018, F821

# Built-in plugins are loaded by name from ``BUILTIN_PLUGINS`` ("module:Class" strings).
AnswerScorer
JsonSchemaValidator
RegexValidator
RepeatReducer
ScoreComparison
ScoreExtractor
ScoreStatistics
ScoreSummary
SemanticSimilarity
ThresholdEarlyStop

# The plugin API: plugins call these on the proxies they are given (docs/plugins.md).
_.get_metadata
_.verify_clearance

# Enum members and dataclass / model fields: read by value, serialised, or rendered by templates.
DROP  # datasources ExtraColumns, chosen by value in the settings
seal_audit_id  # bundle manifest field
parameter_schema  # PluginInfo field, from the worker's description
cache_misreads  # StageSummary fields (docs/llm.md), in the JSON summary
abandoned
rows_loaded  # JSON summary field
grade_error  # audit event and judge totals fields, in the audit log and the JSON summary
malformed
call_errors
unanswered
libseccomp_version  # SeccompStatus field, in the worker's sandbox report
nproc  # WorkerLimits fields, applied with setrlimit by name
address_space_bytes
cpu_seconds
open_files
file_size_bytes
core_bytes
svg  # chart and report view fields, read by the Jinja templates
score_distributions
baseline_deltas
cost_and_latency
total_rows
clipped_cells
_.gname  # tarfile.TarInfo attribute written into the bundle archive
_.datum_a  # libseccomp's struct scmp_arg_cmp, filled for the C library
_.datum_b

# Audit event fields (src/elspeth/audit/_events.py): written to the log by dataclasses.asdict.
latency_ms
retry_delay_ms
attempt_count
rows_marked

# Arguments that a protocol's signature requires (__exit__, __reduce_ex__, __deepcopy__, ...).
exc_type
kwargs
protocol
memo
decoder

# asyncio.Protocol callbacks, called by the event loop.
_.connection_made
_.connection_lost
_.data_received
_.pause_writing
_.resume_writing

# Public API used by tests, benchmarks and the documentation.
ipc_to_frame  # bench/bench_workers.py
frame_id_for  # the protocol's frame-id rule, checked against tests/vectors
_.usable  # ResponseCache
_.bytes_received  # WorkerProcess, checked by the boundary-limit tests
_.in_flight_bytes  # PluginRuntime
_.run_many  # PluginRuntime: concurrent calls
_.from_rank  # SecurityLevel (docs/security-model.md)
_.level_of  # ClearancePlan (docs/security-model.md)
_.incoming_of
_.linear  # PipelineSpec.linear (docs/security-model.md)
_.live_frames  # SealEngine, in the daemon's health answer and its tests
_.owner_marker_path  # StandaloneDaemon

# http.server calls these by name on the viewer's request handler and server.
_.do_GET
_.do_HEAD
_.log_message
_.server_version
_.sys_version
_.daemon_threads
_.handle_error
_.address_family  # socketserver reads it when it makes the socket
