using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Emulators;

/// <summary>
/// A stateful RAGFlow v0.27 for the sandbox and end-to-end tests: text files are stored on upload, split into
/// paragraph chunks when parsed (at once, or when the host says the task executor finished), and retrieved by keyword
/// overlap with the question. It keeps the traps the real one sets: errors are HTTP 200 with a non-zero
/// <c>code</c>; looking up a name or id that matches nothing is code 102 "lacks permission", not an empty list;
/// a taken dataset name (case-insensitive) becomes "name(1)"; deleting a missing id is code 102 and deletes
/// nothing; request bodies are strict; and a DELETE without ids (or with <c>delete_all</c>) wipes the whole
/// service tenant, which the emulator counts so tests can prove it never happens.
/// </summary>
public partial class RagflowEmulator : Emulator
{
    public const string ApiKey = "ragflow-test-key-0123456789abcdefghijklmnop";
    public const string TenantId = "5e7f0c1d2b3a49586a7b8c9d0e1f2a3b";

    private static readonly HashSet<string> CreateFields = ["name", "avatar", "description", "embedding_model", "permission", "chunk_method", "parser_config", "parse_type", "pipeline_id", "auto_metadata_config", "ext"];
    private static readonly HashSet<string> ParserFields = ["chunk_token_num", "delimiter", "auto_keywords", "auto_questions", "layout_recognize", "html4excel", "task_page_size", "tag_kb_ids", "topn_tags", "filename_embd_weight", "raptor", "graphrag", "parent_child", "ext"];
    private static readonly HashSet<string> DeleteFields = ["ids", "delete_all"];
    private static readonly HashSet<string> ListFields = ["page", "page_size", "orderby", "desc", "name", "id", "ids", "include_parsing_status", "ext"];

    private readonly Dictionary<string, JsonObject> _datasets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<JsonObject>> _documents = new(StringComparer.Ordinal);
    private readonly HashSet<string> _duplicateNext = [];
    private readonly Dictionary<string, string> _texts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _chunks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _parseRequests = new(StringComparer.Ordinal);
    private long _clock = 1_760_000_000_000;
    private int _unscopedDeletes;

    public RagflowEmulator()
    {
        RegisterRoutes();
    }

    /// <summary>False makes <c>/api/v1/system/healthz</c> answer 500 with a failing dependency.</summary>
    public bool Healthy { get; set; } = true;

    /// <summary>DELETEs that named no ids or asked for <c>delete_all</c>: each one wiped (or could have wiped) every buyer's data.</summary>
    public int UnscopedDeletes => Snapshot(() => _unscopedDeletes);

    public IReadOnlyList<JsonObject> Datasets => Snapshot(() => _datasets.Values.Select(d => (JsonObject)d.DeepClone()).ToList());

    public IReadOnlyList<JsonObject> Documents(string datasetId) =>
        Snapshot(() => _documents.TryGetValue(datasetId, out var docs) ? docs.Select(d => (JsonObject)d.DeepClone()).ToList() : []);

    /// <summary>The next dataset create first stores an identical dataset (an earlier attempt whose answer was lost).</summary>
    public void DuplicateNextCreate()
    {
        lock (Sync)
        {
            _duplicateNext.Add("datasets");
        }
    }

    /// <summary>Stores a dataset as if someone (an earlier, crashed attempt) had created it; returns its id.</summary>
    public string AddDataset(string name)
    {
        lock (Sync)
        {
            return NewDataset(new JsonObject { ["name"] = name, ["permission"] = "me" })["id"]!.GetValue<string>();
        }
    }

    /// <summary>
    /// Stores a document in the dataset as if it had been uploaded (and, for DONE, parsed) before the adapter's database
    /// knew it; returns its id. <paramref name="run"/> is RAGFlow's state: UNSTART, RUNNING, CANCEL, DONE or FAIL.
    /// </summary>
    public string AddDocument(string datasetId, string name, string text, string run = "DONE", double progress = 0, string progressLog = "")
    {
        lock (Sync)
        {
            var document = Upload(_datasets[datasetId], DocumentsOf(datasetId), name, text);
            if (run == "DONE")
            {
                Parsed(document);
            }
            else
            {
                document["run"] = run;
                document["progress"] = progress;
                document["progress_msg"] = progressLog;
            }

            return document["id"]!.GetValue<string>();
        }
    }

    /// <summary>Whether a parse request finishes at once (true) or leaves documents RUNNING until <see cref="FinishParsing"/>.</summary>
    public bool ParseAtOnce { get; set; } = true;

    /// <summary>Every RUNNING document of the dataset finishes parsing.</summary>
    public void FinishParsing(string datasetId)
    {
        lock (Sync)
        {
            foreach (var document in _documents.GetValueOrDefault(datasetId) ?? [])
            {
                if (document["run"]!.GetValue<string>() == "RUNNING")
                {
                    Parsed(document);
                }
            }
        }
    }

    /// <summary>Every RUNNING document of the dataset moves on to <paramref name="progress"/> (0 to 1) and logs a line, as the task executor does.</summary>
    public void AdvanceParsing(string datasetId, double progress)
    {
        lock (Sync)
        {
            foreach (var document in Running(datasetId))
            {
                document["progress"] = progress;
                document["progress_msg"] = $"{document["progress_msg"]}\n{DateTime.UtcNow:HH:mm:ss} Page(1~12): OCR finished ({progress:P0})".TrimStart('\n');
            }
        }
    }

    /// <summary>Every RUNNING document of the dataset is UNSTART again, as when the task executor lost its queued task.</summary>
    public void LoseParsing(string datasetId)
    {
        lock (Sync)
        {
            foreach (var document in Running(datasetId))
            {
                document["run"] = "UNSTART";
                document["progress"] = 0.0;
                document["progress_msg"] = string.Empty;
            }
        }
    }

    /// <summary>
    /// Every RUNNING document of the dataset fails as a task reporting progress -1 makes it: <c>run</c> FAIL,
    /// <c>progress</c> -1, the reason as the last line of the <c>progress_msg</c> log.
    /// </summary>
    public void FailParsing(string datasetId, string reason)
    {
        lock (Sync)
        {
            foreach (var document in Running(datasetId))
            {
                document["run"] = "FAIL";
                document["progress"] = -1.0;
                document["progress_msg"] = $"{DateTime.UtcNow:HH:mm:ss} Task has been received.\n{DateTime.UtcNow:HH:mm:ss} [ERROR]{reason}";
            }
        }
    }

    /// <summary>How many parse requests named <paramref name="documentId"/> (each one re-parses and costs).</summary>
    public int ParseRequests(string documentId) => Snapshot(() => _parseRequests.GetValueOrDefault(documentId));

    private List<JsonObject> Running(string datasetId) =>
        (_documents.GetValueOrDefault(datasetId) ?? []).Where(d => d["run"]!.GetValue<string>() == "RUNNING").ToList();

    protected override EmulatorResponse NotFound(EmulatorMessage request) =>
        EmulatorResponse.Json(new JsonObject { ["code"] = 404, ["message"] = $"Not Found: {request.Path}", ["data"] = null, ["error"] = "Not Found" }, 404);

    private T Snapshot<T>(Func<T> read)
    {
        lock (Sync)
        {
            return read();
        }
    }

    private void RegisterRoutes()
    {
        Route("GET", "/api/v1/system/healthz", _ => Healthy
            ? EmulatorResponse.Json(new JsonObject { ["db"] = "ok", ["redis"] = "ok", ["doc_engine"] = "ok", ["storage"] = "ok", ["status"] = "ok" })
            : EmulatorResponse.Json(new JsonObject
            {
                ["db"] = "ok",
                ["redis"] = "nok",
                ["doc_engine"] = "ok",
                ["storage"] = "ok",
                ["status"] = "nok",
                ["_meta"] = new JsonObject { ["redis"] = new JsonObject { ["elapsed"] = "5.2", ["error"] = "Lost connection!" } },
            }, 500));

        Route("POST", "/api/v1/datasets", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            if (Invalid(body, CreateFields) is { } bad)
            {
                return bad;
            }

            if (body["parser_config"] is JsonObject parser && Invalid(parser, ParserFields) is { } badParser)
            {
                return badParser;
            }

            if (body["name"] is not JsonValue nameValue || nameValue.GetValueKind() != JsonValueKind.String || nameValue.GetValue<string>().Trim().Length is 0 or > 128)
            {
                return Code(101, "Field: <name> - Message: <String should have at least 1 character> - Value: <>");
            }

            if (body["permission"] is { } permission && permission.GetValue<string>() is not ("me" or "team"))
            {
                return Code(101, "Field: <permission> - Message: <Input should be 'me' or 'team'>");
            }

            if (_duplicateNext.Remove("datasets"))
            {
                NewDataset(body);
            }

            return Ok(NewDataset(body));
        }));

        Route("GET", "/api/v1/datasets", request => Authorized(request, () =>
        {
            var unknown = request.Message.Query?.Keys.FirstOrDefault(k => !ListFields.Contains(k));
            if (unknown is not null)
            {
                return Code(101, $"Field: <{unknown}> - Message: <Extra inputs are not permitted>");
            }

            if (int.TryParse(request.Query("page_size"), out var size) && size > 100)
            {
                return Code(101, "Field: <page_size> - Message: <Input should be less than or equal to 100>");
            }

            IEnumerable<JsonObject> matching = _datasets.Values.OrderByDescending(d => d["create_time"]!.GetValue<long>());
            if (request.Query("name") is { } name)
            {
                matching = matching.Where(d => string.Equals(d["name"]!.GetValue<string>(), name, StringComparison.OrdinalIgnoreCase)).ToList();
                if (!matching.Any())
                {
                    return Code(102, $"User '{TenantId}' lacks permission for dataset '{name}'");
                }
            }

            if (request.Query("id") is { } id)
            {
                matching = matching.Where(d => d["id"]!.GetValue<string>() == id.Replace("-", "", StringComparison.Ordinal)).ToList();
                if (!matching.Any())
                {
                    return Code(102, $"User '{TenantId}' lacks permission for dataset '{id}'");
                }
            }

            var list = matching.ToList();
            var page = int.TryParse(request.Query("page"), out var p) ? p : 1;
            size = size > 0 ? size : 30;
            return EmulatorResponse.Json(new JsonObject
            {
                ["code"] = 0,
                ["data"] = new JsonArray(list.Skip((page - 1) * size).Take(size).Select(d => (JsonNode)d.DeepClone()).ToArray()),
                ["total_datasets"] = list.Count,
            });
        }));

        Route("DELETE", "/api/v1/datasets", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            if (Invalid(body, DeleteFields) is { } bad)
            {
                return bad;
            }

            var ids = (body["ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            if (ids.Count == 0)
            {
                _unscopedDeletes++;
                if (body["delete_all"]?.GetValue<bool>() == true)
                {
                    var all = _datasets.Count;
                    _datasets.Clear();
                    _documents.Clear();
                    return Ok(new JsonObject { ["success_count"] = all });
                }

                return Ok(new JsonObject { ["success_count"] = 0 });
            }

            // All or nothing: one id the tenant does not own (or that is gone) and none is deleted.
            var missing = ids.Where(i => !_datasets.ContainsKey(i)).ToList();
            if (missing.Count > 0)
            {
                return Code(102, $"User '{TenantId}' lacks permission for datasets: '{string.Join(", ", missing)}'");
            }

            foreach (var id in ids)
            {
                _datasets.Remove(id);
                _documents.Remove(id);
            }

            return Ok(new JsonObject { ["success_count"] = ids.Count });
        }));

        Route("POST", "/api/v1/datasets/{dataset_id}/documents", request => OnDataset(request, (dataset, docs) =>
        {
            var files = MultipartFiles(request.Message);
            if (files.Count == 0)
            {
                return Code(101, "No file part!");
            }

            // document_api.py::_upload_local_documents: FILE_NAME_LEN_LIMIT, checked before any file is stored.
            if (files.Any(file => Encoding.UTF8.GetByteCount(file.Name) > 255))
            {
                return Code(101, "File name must be 255 bytes or less.");
            }

            var created = new JsonArray();
            foreach (var (name, text, size) in files)
            {
                created.Add(Upload(dataset, docs, name, text, size).DeepClone());
            }

            return EmulatorResponse.Json(new JsonObject { ["code"] = 0, ["data"] = created });
        }));

        // document_api.py::list_docs: one page (30 by default, at most 100), newest first unless desc=false.
        Route("GET", "/api/v1/datasets/{dataset_id}/documents", request => OnDataset(request, (_, docs) =>
        {
            if (request.Query("id") is { } one)
            {
                // As RAGFlow's list_docs: an id the dataset does not hold is an ownership error, not an empty page.
                return docs.FirstOrDefault(d => d["id"]!.GetValue<string>() == one) is { } found
                    ? EmulatorResponse.Json(new JsonObject { ["code"] = 0, ["message"] = "success", ["data"] = new JsonObject { ["total"] = 1, ["docs"] = new JsonArray(found.DeepClone()) } })
                    : Code(102, $"You don't own the document {one}.");
            }

            var size = int.TryParse(request.Query("page_size"), out var s) ? s : 30;
            if (size is < 1 or > 100)
            {
                return Code(101, "Field: <page_size> - Message: <Input should be less than or equal to 100>");
            }

            var page = int.TryParse(request.Query("page"), out var p) && p > 0 ? p : 1;
            var newestFirst = !string.Equals(request.Query("desc"), "false", StringComparison.OrdinalIgnoreCase);
            var ordered = newestFirst ? docs.OrderByDescending(d => d["create_time"]!.GetValue<long>()) : docs.OrderBy(d => d["create_time"]!.GetValue<long>());
            return EmulatorResponse.Json(new JsonObject
            {
                ["code"] = 0,
                ["message"] = "success",
                ["data"] = new JsonObject
                {
                    ["total"] = docs.Count,
                    ["docs"] = new JsonArray(ordered.Skip((page - 1) * size).Take(size).Select(d => (JsonNode)d.DeepClone()).ToArray()),
                },
            });
        }));

        Route("DELETE", "/api/v1/datasets/{dataset_id}/documents", request => OnDataset(request, (_, docs) =>
        {
            var body = request.JsonObject;
            var ids = (body["ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            if (ids.Count == 0)
            {
                _unscopedDeletes++;
                if (body["delete_all"]?.GetValue<bool>() == true)
                {
                    var all = docs.Count;
                    docs.Clear();
                    return Ok(new JsonObject { ["deleted"] = all });
                }

                return Code(102, "`ids` is required");
            }

            var missing = ids.Where(i => docs.All(d => d["id"]!.GetValue<string>() != i)).ToList();
            if (missing.Count > 0)
            {
                return Code(102, $"These documents do not belong to dataset or Document not found: {string.Join(", ", missing)}");
            }

            docs.RemoveAll(d => ids.Contains(d["id"]!.GetValue<string>()));
            return Ok(new JsonObject { ["deleted"] = ids.Count });
        }));

        Route("POST", "/api/v1/datasets/{dataset_id}/chunks", request => OnDataset(request, (_, docs) =>
        {
            var ids = (request.JsonObject["document_ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            if (ids.Count == 0)
            {
                return Code(102, "`document_ids` is required");
            }

            var notFound = new List<string>();
            foreach (var id in ids)
            {
                var document = docs.FirstOrDefault(d => d["id"]!.GetValue<string>() == id);
                if (document is null)
                {
                    notFound.Add(id);
                    continue;
                }

                if (document["run"]!.GetValue<string>() == "RUNNING")
                {
                    return Code(102, "Can't parse document that is currently being processed");
                }

                _parseRequests[id] = _parseRequests.GetValueOrDefault(id) + 1;
                if (ParseAtOnce)
                {
                    Parsed(document);
                    continue;
                }

                document["run"] = "RUNNING";
                document["progress"] = 0.0;
                document["progress_msg"] = "";
                document["chunk_count"] = 0;
            }

            return notFound.Count > 0 ? Code(102, $"Documents not found: [{string.Join(", ", notFound)}]") : EmulatorResponse.Json(new JsonObject { ["code"] = 0 });
        }));

        // chunk_api.py::stop_parsing: RUNNING becomes CANCEL; any other state aborts the call with 102.
        Route("DELETE", "/api/v1/datasets/{dataset_id}/chunks", request => OnDataset(request, (_, docs) =>
        {
            var ids = (request.JsonObject["document_ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            if (ids.Count == 0)
            {
                return Code(102, "`document_ids` is required");
            }

            foreach (var id in ids)
            {
                var document = docs.FirstOrDefault(d => d["id"]!.GetValue<string>() == id);
                if (document is null)
                {
                    return Code(102, $"You don't own the document {id}.");
                }

                if (document["run"]!.GetValue<string>() != "RUNNING")
                {
                    return EmulatorResponse.Json(new JsonObject
                    {
                        ["code"] = 102,
                        ["message"] = "Can't stop parsing document that has not started or already completed",
                        ["data"] = new JsonObject { ["error_code"] = "DOC_STOP_PARSING_INVALID_STATE" },
                    });
                }

                document["run"] = "CANCEL";
                document["progress"] = 0.0;
            }

            return EmulatorResponse.Json(new JsonObject { ["code"] = 0 });
        }));

        Route("POST", "/api/v1/retrieval", request => Authorized(request, () =>
        {
            var body = request.JsonObject;
            var datasetIds = (body["dataset_ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            if (datasetIds.Count == 0)
            {
                return Code(102, "`dataset_ids` is required.");
            }

            if (datasetIds.FirstOrDefault(id => !_datasets.ContainsKey(id)) is { } foreign)
            {
                return Code(102, $"You don't own the dataset {foreign}.");
            }

            var question = Words(body["question"]?.GetValue<string>() ?? string.Empty);
            var limit = body["page_size"]?.GetValue<int>() ?? body["top_k"]?.GetValue<int>() ?? 30;
            var threshold = body["similarity_threshold"]?.GetValue<double>() ?? 0.0;
            var chunks = datasetIds
                .SelectMany(id => (_documents.GetValueOrDefault(id) ?? []).Where(d => d["run"]!.GetValue<string>() == "DONE")
                    .SelectMany(d => (_chunks.GetValueOrDefault(d["id"]!.GetValue<string>()) ?? []).Select((content, index) => (Dataset: id, Document: d, Content: content, Index: index))))
                .Select(c => (Chunk: c, Score: Overlap(question, Words(c.Content))))
                .Where(c => c.Score > 0 && c.Score >= threshold)
                .OrderByDescending(c => c.Score).ThenBy(c => c.Chunk.Document["name"]!.GetValue<string>(), StringComparer.Ordinal).ThenBy(c => c.Chunk.Index)
                .Take(Math.Max(limit, 1))
                .Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = $"{c.Chunk.Document["id"]!.GetValue<string>()}-{c.Chunk.Index}",
                    ["content"] = c.Chunk.Content,
                    ["document_id"] = c.Chunk.Document["id"]!.DeepClone(),
                    ["document_keyword"] = c.Chunk.Document["name"]!.DeepClone(),
                    ["dataset_id"] = c.Chunk.Dataset,
                    ["similarity"] = Math.Round(c.Score, 4),
                    ["vector_similarity"] = Math.Round(c.Score, 4),
                    ["term_similarity"] = Math.Round(c.Score, 4),
                }).ToArray();
            return Ok(new JsonObject { ["chunks"] = new JsonArray(chunks), ["doc_aggs"] = new JsonArray(), ["total"] = chunks.Length });
        }));
    }

    private EmulatorResponse Authorized(RouteRequest request, Func<EmulatorResponse> handler)
    {
        var authorization = request.Header("Authorization");
        var key = authorization?.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) == true ? authorization[7..] : authorization;
        if (key != ApiKey)
        {
            return EmulatorResponse.Json(new JsonObject { ["code"] = 401, ["message"] = "<Unauthorized '401: Unauthorized'>", ["data"] = null }, 401);
        }

        lock (Sync)
        {
            return handler();
        }
    }

    private EmulatorResponse OnDataset(RouteRequest request, Func<JsonObject, List<JsonObject>, EmulatorResponse> handler) => Authorized(request, () =>
    {
        var id = request.PathValues["dataset_id"];
        if (!_datasets.TryGetValue(id, out var dataset))
        {
            return Code(102, $"You don't own the dataset {id}. ");
        }

        return handler(dataset, DocumentsOf(id));
    });

    private List<JsonObject> DocumentsOf(string datasetId)
    {
        if (!_documents.TryGetValue(datasetId, out var docs))
        {
            docs = [];
            _documents[datasetId] = docs;
        }

        return docs;
    }

    /// <summary>
    /// A file stored as the upload route stores it: a new UNSTART document, renamed "x(1).md" when its name is taken. A large
    /// file arrives shortened (<see cref="KeptFileBytes"/>): its size is what was sent, its text the start.
    /// </summary>
    private JsonObject Upload(JsonObject dataset, List<JsonObject> docs, string name, string text, long? size = null)
    {
        var document = NewDocument(dataset, UniqueFileName(docs, name));
        // A parsed number, as a real response body gives: readers take it as an int or a long alike.
        document["size"] = JsonNode.Parse((size ?? Encoding.UTF8.GetByteCount(text)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        _texts[document["id"]!.GetValue<string>()] = text;
        docs.Add(document);
        return document;
    }

    /// <summary>Pydantic's <c>extra="forbid"</c> and strict types: unknown fields and nulls are argument errors.</summary>
    private static EmulatorResponse? Invalid(JsonObject body, IReadOnlySet<string> allowed)
    {
        foreach (var (key, value) in body)
        {
            if (!allowed.Contains(key))
            {
                return Code(101, $"Field: <{key}> - Message: <Extra inputs are not permitted> - Value: <{value?.ToJsonString()}>");
            }

            if (value is null)
            {
                return Code(101, $"Field: <{key}> - Message: <Input should not be None> - Value: <None>");
            }
        }

        return null;
    }

    private JsonObject NewDataset(JsonObject body)
    {
        var id = Guid.NewGuid().ToString("N");
        var now = _clock++;
        var name = body["name"]!.GetValue<string>().Trim();
        var parser = body["parser_config"]?.DeepClone() as JsonObject
            // The server's default when none is sent: RAPTOR and GraphRAG on.
            ?? new JsonObject
            {
                ["chunk_token_num"] = 512,
                ["delimiter"] = "\n",
                ["layout_recognize"] = "DeepDOC",
                ["raptor"] = new JsonObject { ["use_raptor"] = true },
                ["graphrag"] = new JsonObject { ["use_graphrag"] = true },
            };
        var dataset = new JsonObject
        {
            ["id"] = id,
            ["name"] = UniqueDatasetName(name),
            ["avatar"] = body["avatar"]?.DeepClone(),
            ["description"] = body["description"]?.DeepClone(),
            ["tenant_id"] = TenantId,
            ["created_by"] = TenantId,
            ["language"] = "English",
            ["embedding_model"] = body["embedding_model"]?.DeepClone() ?? "BAAI/bge-large-zh-v1.5@BAAI",
            ["permission"] = body["permission"]?.DeepClone() ?? "me",
            ["chunk_method"] = body["chunk_method"]?.DeepClone() ?? "naive",
            ["parser_config"] = parser,
            ["document_count"] = 0,
            ["chunk_count"] = 0,
            ["token_num"] = 0,
            ["similarity_threshold"] = 0.2,
            ["vector_similarity_weight"] = 0.3,
            ["pagerank"] = 0,
            ["status"] = "1",
            ["create_time"] = now,
            ["update_time"] = now,
            ["create_date"] = DateTimeOffset.FromUnixTimeMilliseconds(now).ToString("R", CultureInfo.InvariantCulture),
            ["update_date"] = DateTimeOffset.FromUnixTimeMilliseconds(now).ToString("R", CultureInfo.InvariantCulture),
        };
        _datasets[id] = dataset;
        return dataset;
    }

    // duplicate_name(): "name(1)", "name(2)", ... compared case-insensitively.
    private string UniqueDatasetName(string name)
    {
        bool Taken(string candidate) => _datasets.Values.Any(d => string.Equals(d["name"]!.GetValue<string>(), candidate, StringComparison.OrdinalIgnoreCase));
        if (!Taken(name))
        {
            return name;
        }

        for (var i = 1; ; i++)
        {
            if (!Taken($"{name}({i})"))
            {
                return $"{name}({i})";
            }
        }
    }

    private JsonObject NewDocument(JsonObject dataset, string name)
    {
        var now = _clock++;
        return new JsonObject
        {
            ["id"] = Guid.NewGuid().ToString("N"),
            ["name"] = name,
            ["dataset_id"] = dataset["id"]!.DeepClone(),
            ["chunk_method"] = "naive",
            ["parser_config"] = dataset["parser_config"]!.DeepClone(),
            ["created_by"] = TenantId,
            ["type"] = "doc",
            ["source_type"] = "local",
            ["suffix"] = Path.GetExtension(name).TrimStart('.'),
            ["location"] = name,
            ["size"] = 17,
            ["thumbnail"] = null,
            ["run"] = "UNSTART",
            ["progress"] = 0.0,
            ["progress_msg"] = "",
            ["process_begin_at"] = null,
            ["process_duration"] = 0.0,
            ["chunk_count"] = 0,
            ["token_count"] = 0,
            ["status"] = "1",
            ["create_time"] = now,
            ["update_time"] = now,
        };
    }

    private static string UniqueFileName(List<JsonObject> docs, string name)
    {
        if (docs.All(d => d["name"]!.GetValue<string>() != name))
        {
            return name;
        }

        var stem = Path.GetFileNameWithoutExtension(name);
        var extension = Path.GetExtension(name);
        for (var i = 1; ; i++)
        {
            var candidate = $"{stem}({i}){extension}";
            if (docs.All(d => d["name"]!.GetValue<string>() != candidate))
            {
                return candidate;
            }
        }
    }

    private static EmulatorResponse Ok(JsonNode data) => EmulatorResponse.Json(new JsonObject { ["code"] = 0, ["data"] = data.DeepClone() });

    private static EmulatorResponse Code(int code, string message) => EmulatorResponse.Json(new JsonObject { ["code"] = code, ["message"] = message });

    /// <summary>The files of a multipart upload (field <c>file</c>), as name, UTF-8 text and, when shortened on arrival, the size sent.</summary>
    private static List<(string Name, string Text, long? Size)> MultipartFiles(EmulatorMessage message)
    {
        var files = new List<(string, string, long?)>();
        if (message.ContentType is not { } contentType || message.BodyAsBytes is not { Length: > 0 } body
            || !Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media) || media.Boundary.Value is not { Length: > 0 } boundary)
        {
            return files;
        }

        var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary.Trim('"'), new MemoryStream(body));
        while (reader.ReadNextSectionAsync().GetAwaiter().GetResult() is { } section)
        {
            // The name as a form parser reads it: filename* (RFC 5987) when sent, as .NET sends it for a non-ASCII name.
            if (Microsoft.Net.Http.Headers.ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                && (disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName) is { HasValue: true } name)
            {
                using var text = new StreamReader(section.Body, Encoding.UTF8);
                long? sent = section.Headers?.TryGetValue(SentLengthHeader, out var length) == true ? long.Parse(length.ToString(), CultureInfo.InvariantCulture) : null;
                files.Add((Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(name).ToString(), text.ReadToEnd(), sent));
            }
        }

        return files;
    }

    /// <summary>A text document parsed: one chunk per paragraph.</summary>
    private void Parsed(JsonObject document)
    {
        var id = document["id"]!.GetValue<string>();
        var chunks = Paragraphs(_texts.GetValueOrDefault(id) ?? string.Empty);
        _chunks[id] = chunks;
        document["run"] = "DONE";
        document["progress"] = 1.0;
        document["chunk_count"] = chunks.Count;
        document["token_count"] = chunks.Sum(c => Words(c).Count);
    }

    private static List<string> Paragraphs(string text) =>
        [.. Regex.Split(text.ReplaceLineEndings("\n"), @"\n\s*\n").Select(p => Regex.Replace(p, @"\s+", " ").Trim()).Where(p => p.Length > 0)];

    private static readonly HashSet<string> StopWords = ["the", "and", "for", "are", "but", "not", "you", "your", "with", "this", "that", "what", "how", "can", "does", "from", "have", "has", "was", "who", "why", "when", "where", "which", "will", "there", "their", "about", "into", "our", "its"];

    /// <summary>The text's content words, lower-cased and crudely stemmed ("refunds", "refunded" → "refund").</summary>
    private static HashSet<string> Words(string text) =>
        [.. Regex.Matches(text.ToLowerInvariant(), @"\p{L}[\p{L}\p{N}]+").Select(m => m.Value).Where(w => w.Length >= 3 && !StopWords.Contains(w)).Select(Stem)];

    private static string Stem(string word)
    {
        foreach (var suffix in (string[])["ing", "ed", "es", "s"])
        {
            if (word.EndsWith(suffix, StringComparison.Ordinal) && word.Length - suffix.Length >= 4)
            {
                return word[..^suffix.Length];
            }
        }

        return word;
    }

    /// <summary>The share of the question's words the chunk contains (0 to 1).</summary>
    private static double Overlap(HashSet<string> question, HashSet<string> chunk) =>
        question.Count == 0 ? 0 : (double)question.Count(chunk.Contains) / question.Count;
}
