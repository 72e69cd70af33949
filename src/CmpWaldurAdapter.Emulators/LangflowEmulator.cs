using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Emulators;

/// <summary>
/// A stateful Langflow 1.4.2 for the sandbox and end-to-end tests, with the traps the real one sets: users are created inactive until a
/// superuser PATCHes them; API keys are minted for the caller only; flow and project names clash into
/// "Name (1)" (and endpoint names into "name-1") without an error; a path with the wrong trailing slash gets a
/// 307; every user gets a default project; deleting a user leaves its flows behind; deleting a missing API key is a 400. Ownership is enforced on every tenant call (the behaviour of the
/// releases with the ownership fixes). Runs answer deterministically from the retrieved passages (a test host may
/// script the answers and how streams end instead).
/// </summary>
public partial class LangflowEmulator : Emulator
{
    public const string SuperuserUsername = "langflow-admin";
    public const string SuperuserPassword = "superuser-password-0123456789abcdef";
    public const string DefaultProjectName = "My Collection";

    private readonly Dictionary<Guid, EmulatedUser> _users = [];
    private readonly Dictionary<Guid, EmulatedKey> _keys = [];
    private readonly Dictionary<Guid, JsonObject> _projects = [];
    private readonly Dictionary<Guid, JsonObject> _flows = [];
    private readonly Dictionary<string, Guid> _tokens = new(StringComparer.Ordinal);
    private readonly HashSet<string> _duplicateNext = [];
    private int _queryKeyUses;

    public LangflowEmulator()
    {
        var superuser = new EmulatedUser(Guid.NewGuid(), SuperuserUsername, SuperuserPassword) { IsActive = true, IsSuperuser = true };
        _users[superuser.Id] = superuser;
        SuperuserId = superuser.Id;
        RegisterRoutes();
    }

    public Guid SuperuserId { get; }

    /// <summary>LANGFLOW_NEW_USER_IS_ACTIVE (false by default, as upstream).</summary>
    public bool NewUserIsActive { get; set; }

    /// <summary>False makes <c>/health_check</c> answer 500.</summary>
    public bool Healthy { get; set; } = true;

    /// <summary>Requests that carried an API key in the query string (the adapter must never do that).</summary>
    public int QueryKeyUses
    {
        get
        {
            lock (Sync)
            {
                return _queryKeyUses;
            }
        }
    }

    /// <summary>Deletes API keys, as an administrator can in Langflow's settings: requests with them are refused from now on.</summary>
    public void DeleteApiKeys(Func<LangflowKey, bool> which)
    {
        lock (Sync)
        {
            foreach (var key in _keys.Values.Where(k => which(new LangflowKey(k.Id, k.UserId, k.Name, k.Secret))).ToList())
            {
                _keys.Remove(key.Id);
            }
        }
    }

    /// <summary>A key of the user that its owner made by hand in Langflow (not one the adapter made); returns its secret.</summary>
    public string AddApiKey(Guid userId, string name)
    {
        lock (Sync)
        {
            var key = new EmulatedKey(Guid.NewGuid(), userId, name, Secret("sk-" + Guid.NewGuid().ToString("N"), "Langflow API key"));
            _keys[key.Id] = key;
            return key.Secret;
        }
    }

    /// <summary>
    /// Deletes a user, as an administrator can in Langflow's admin page. As in Langflow 1.x, the user's ORM cascade
    /// takes its keys and projects but not its flows: those stay, with their messages, owned by a user that is gone.
    /// </summary>
    public void DeleteUser(Guid id)
    {
        lock (Sync)
        {
            _users.Remove(id);
            foreach (var key in _keys.Values.Where(k => k.UserId == id).ToList())
            {
                _keys.Remove(key.Id);
            }

            RemoveOwned(_projects, id);
        }
    }

    /// <summary>
    /// The next create of this kind ("projects" or "flows") first stores an identical object, as if an earlier
    /// attempt had succeeded and its answer was lost, so the create under test gets the renamed twin back.
    /// </summary>
    public void DuplicateNextCreate(string kind)
    {
        lock (Sync)
        {
            _duplicateNext.Add(kind);
        }
    }

    public IReadOnlyList<LangflowUser> Users => Snapshot(() => _users.Values.Where(u => !u.IsSuperuser)
        .Select(u => new LangflowUser(u.Id, u.Username, u.IsActive)).ToList());

    public IReadOnlyList<LangflowKey> ApiKeys => Snapshot(() => _keys.Values.Select(k => new LangflowKey(k.Id, k.UserId, k.Name, k.Secret)).ToList());

    public IReadOnlyList<LangflowItem> Projects => Snapshot(() => _projects.Values.Select(Item).ToList());

    public IReadOnlyList<LangflowItem> Flows => Snapshot(() => _flows.Values.Select(Item).ToList());

    public JsonObject Flow(Guid id) => Snapshot(() => (JsonObject)_flows[id].DeepClone());

    /// <summary>Replaces a stored flow's graph, as an older build of the adapter may have left it (tests of upgrades).</summary>
    public void ReplaceFlowData(Guid id, JsonObject data)
    {
        lock (Sync)
        {
            _flows[id]["data"] = data.DeepClone();
        }
    }

    /// <summary>The user a login token belongs to, if it exists.</summary>
    public Guid? TokenOwner(string token) => Snapshot(() => _tokens.TryGetValue(token, out var user) ? user : (Guid?)null);

    /// <summary>The user an API key belongs to, if it exists.</summary>
    public Guid? KeyOwner(string secret) => Snapshot(() => _keys.Values.FirstOrDefault(k => k.Secret == secret)?.UserId);

    protected override EmulatorResponse NotFound(EmulatorMessage request)
    {
        // FastAPI redirects a path that differs only by its trailing slash.
        var toggled = request.Path.EndsWith('/') ? request.Path.TrimEnd('/') : request.Path + "/";
        return HasRoute(request.Method, toggled)
            ? new EmulatorResponse(307, null, "text/plain", new Dictionary<string, string> { ["Location"] = Url.ToString().TrimEnd('/') + toggled })
            : EmulatorResponse.Error(404, "Not Found");
    }

    private static LangflowItem Item(JsonObject o) => new(
        Guid.Parse(o["id"]!.GetValue<string>()),
        Guid.Parse(o["user_id"]!.GetValue<string>()),
        o["name"]!.GetValue<string>(),
        o["folder_id"]?.GetValue<string>() is { } folder ? Guid.Parse(folder) : null);

    private T Snapshot<T>(Func<T> read)
    {
        lock (Sync)
        {
            return read();
        }
    }

    private void RegisterRoutes()
    {
        Route("GET", "/health_check", _ => Healthy
            ? EmulatorResponse.Json(new JsonObject { ["status"] = "ok", ["chat"] = "ok", ["db"] = "ok" })
            : EmulatorResponse.Json(new JsonObject { ["detail"] = new JsonObject { ["status"] = "nok", ["chat"] = "ok", ["db"] = "error check the server logs" } }, 500));

        Route("POST", "/api/v1/login", request => Locked(() =>
        {
            var form = Form(request.Message.Body);
            var user = _users.Values.FirstOrDefault(u => u.Username == form.GetValueOrDefault("username"));
            if (user is null || user.Password != form.GetValueOrDefault("password"))
            {
                return EmulatorResponse.Error(401, "Incorrect username or password");
            }

            if (!user.IsActive)
            {
                return EmulatorResponse.Error(400, "Waiting for approval");
            }

            EnsureDefaultProject(user.Id);
            var token = Secret("jwt-" + Guid.NewGuid().ToString("N"), "Langflow access token");
            _tokens[token] = user.Id;
            return EmulatorResponse.Json(new JsonObject { ["access_token"] = token, ["refresh_token"] = "refresh-" + token, ["token_type"] = "bearer" });
        }));

        // Users: sign-up is open in 1.4.2; everything else needs the superuser.
        Route("POST", "/api/v1/users/", request => Locked(() =>
        {
            var body = request.JsonObject;
            var username = body["username"]!.GetValue<string>();
            if (_users.Values.Any(u => u.Username == username))
            {
                return EmulatorResponse.Error(400, "This username is unavailable.");
            }

            var user = new EmulatedUser(Guid.NewGuid(), username, Secret(body["password"]!.GetValue<string>(), "Langflow user password")) { IsActive = NewUserIsActive };
            _users[user.Id] = user;
            EnsureDefaultProject(user.Id);
            return EmulatorResponse.Json(UserJson(user), 201);
        }));
        Route("GET", "/api/v1/users/", request => AsSuperuser(request, _ =>
        {
            var skip = int.Parse(request.Query("skip") ?? "0", CultureInfo.InvariantCulture);
            var limit = int.Parse(request.Query("limit") ?? "10", CultureInfo.InvariantCulture);
            var all = _users.Values.OrderBy(u => u.Created).ToList();
            return EmulatorResponse.Json(new JsonObject
            {
                ["total_count"] = all.Count,
                ["users"] = new JsonArray(all.Skip(skip).Take(limit).Select(u => (JsonNode)UserJson(u)).ToArray()),
            });
        }));
        Route("PATCH", "/api/v1/users/{user_id}", request => AsSuperuser(request, _ =>
        {
            if (!_users.TryGetValue(request.Id("user_id"), out var user))
            {
                return EmulatorResponse.Error(404, "User not found");
            }

            var body = request.JsonObject;
            if (body["password"] is { } password)
            {
                user.Password = Secret(password.GetValue<string>(), "Langflow user password");
            }

            if (body["is_active"] is { } active)
            {
                user.IsActive = active.GetValue<bool>();
            }

            return EmulatorResponse.Json(UserJson(user));
        }));
        Route("DELETE", "/api/v1/users/{user_id}", request => AsSuperuser(request, _ =>
        {
            var id = request.Id("user_id");
            if (!_users.ContainsKey(id))
            {
                return EmulatorResponse.Error(404, "User not found");
            }

            // Deleting a user takes its keys and projects with it, not its flows.
            DeleteUser(id);
            return EmulatorResponse.Json(new JsonObject { ["detail"] = "User deleted" });
        }));

        // API keys: always the caller's own.
        Route("GET", "/api/v1/api_key/", request => AsUser(request, user => EmulatorResponse.Json(new JsonObject
        {
            ["total_count"] = _keys.Values.Count(k => k.UserId == user.Id),
            ["user_id"] = user.Id.ToString(),
            ["api_keys"] = new JsonArray(_keys.Values.Where(k => k.UserId == user.Id).Select(k => (JsonNode)KeyJson(k, masked: true)).ToArray()),
        })));
        Route("POST", "/api/v1/api_key/", request => AsUser(request, user =>
        {
            // Whatever user_id the body names, the key belongs to the caller.
            var key = new EmulatedKey(Guid.NewGuid(), user.Id, request.JsonObject["name"]?.GetValue<string>() ?? "", Secret("sk-" + Guid.NewGuid().ToString("N"), "Langflow API key"));
            _keys[key.Id] = key;
            return EmulatorResponse.Json(KeyJson(key, masked: false));
        }));
        Route("DELETE", "/api/v1/api_key/{api_key_id}", request => AsUser(request, user =>
        {
            var id = request.Id("api_key_id");
            if (!_keys.TryGetValue(id, out var key) || key.UserId != user.Id)
            {
                // 1.4.2 turns every exception of this delete into a 400 with its text (no 404).
                return EmulatorResponse.Error(400, "API Key not found");
            }

            _keys.Remove(id);
            return EmulatorResponse.Json(new JsonObject { ["detail"] = "API Key deleted" });
        }));

        // Projects.
        Route("GET", "/api/v1/projects/", request => AsUser(request, user =>
            EmulatorResponse.Json(new JsonArray(_projects.Values.Where(p => Owner(p) == user.Id).Select(p => (JsonNode)FolderJson(p)).ToArray()))));
        Route("POST", "/api/v1/projects/", request => AsUser(request, user =>
        {
            var body = request.JsonObject;
            if (TakeDuplicate("projects"))
            {
                NewProject(user.Id, body["name"]!.GetValue<string>(), body["description"]?.GetValue<string>());
            }

            var project = NewProject(user.Id, body["name"]!.GetValue<string>(), body["description"]?.GetValue<string>());
            return EmulatorResponse.Json(FolderJson(project), 201);
        }));
        Route("DELETE", "/api/v1/projects/{project_id}", request => AsUser(request, user =>
        {
            var id = request.Id("project_id");
            if (!_projects.TryGetValue(id, out var project) || Owner(project) != user.Id)
            {
                return EmulatorResponse.Error(404, "Project not found");
            }

            _projects.Remove(id);
            foreach (var flow in _flows.Values.Where(f => f["folder_id"]?.GetValue<string>() == id.ToString()).ToList())
            {
                _flows.Remove(Guid.Parse(flow["id"]!.GetValue<string>()));
            }

            return EmulatorResponse.Empty(204);
        }));

        // Flows.
        Route("GET", "/api/v1/flows/", request => AsUser(request, user =>
        {
            // With get_all (the default) 1.4.2 ignores folder_id: every flow of the caller.
            var own = _flows.Values.Where(f => Owner(f) == user.Id).ToList();
            return request.Query("header_flows") == "true"
                ? EmulatorResponse.Json(new JsonArray(own.Select(f => (JsonNode)FlowHeader(f)).ToArray()))
                : EmulatorResponse.Json(new JsonArray(own.Select(f => (JsonNode)f.DeepClone()).ToArray()));
        }));
        Route("POST", "/api/v1/flows/", request => AsUser(request, user =>
        {
            var body = request.JsonObject;
            if (body["folder_id"]?.GetValue<string>() is { } folder && (!_projects.TryGetValue(Guid.Parse(folder), out var project) || Owner(project) != user.Id))
            {
                return EmulatorResponse.Error(404, "Project not found");
            }

            if (TakeDuplicate("flows"))
            {
                NewFlow(user.Id, body);
            }

            return EmulatorResponse.Json(NewFlow(user.Id, body), 201);
        }));
        Route("GET", "/api/v1/flows/{flow_id}", request => AsUser(request, user =>
            OwnFlow(request, user) is { } flow ? EmulatorResponse.Json(flow) : EmulatorResponse.Error(404, "Flow not found")));
        Route("PATCH", "/api/v1/flows/{flow_id}", request => AsUser(request, user =>
        {
            if (OwnFlow(request, user) is not { } flow)
            {
                return EmulatorResponse.Error(404, "Flow not found");
            }

            foreach (var (key, value) in request.JsonObject)
            {
                flow[key] = value?.DeepClone();
            }

            flow["updated_at"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
            return EmulatorResponse.Json(flow);
        }));
        Route("DELETE", "/api/v1/flows/{flow_id}", request => AsUser(request, user =>
        {
            if (OwnFlow(request, user) is not { } flow)
            {
                return EmulatorResponse.Error(404, "Flow not found");
            }

            var flowId = Guid.Parse(flow["id"]!.GetValue<string>());
            _flows.Remove(flowId);
            ForgetMessagesOf(flowId);
            return EmulatorResponse.Json(new JsonObject { ["message"] = "Flow deleted successfully" });
        }));

        // Running: API key only, own flows only. The answer is deterministic: built from the retrieved passages
        // the run's tweaks carry (the prompt's "context"), so end-to-end tests can assert on it.
        Route("POST", "/api/v1/run/{flow_id}", request => Locked(() =>
        {
            var user = KeyUser(request);
            if (user is null)
            {
                return EmulatorResponse.Error(403, "Invalid or missing API key");
            }

            if (!Guid.TryParse(request.PathValues["flow_id"], out var id) || !_flows.TryGetValue(id, out var flow) || Owner(flow) != user.Id)
            {
                return EmulatorResponse.Error(404, "Flow not found");
            }

            var body = request.JsonObject;
            var session = body["session_id"]?.GetValue<string>() ?? id.ToString();
            var input = body["input_value"]?.GetValue<string>() ?? string.Empty;
            var tweaks = body["tweaks"] as JsonObject;
            var text = RunAnswer(flow, tweaks, input);
            RecordRun(id, flow, tweaks, session, input);
            if (string.Equals(request.Query("stream"), "true", StringComparison.OrdinalIgnoreCase))
            {
                // Chat Output stores the answer only when the run ends.
                var script = StreamOf(text);
                StoreMessages(id, flow, tweaks, session, input, script.Ending == LangflowStreamEnding.End ? string.Concat(script.Tokens) : null);
                return StreamedRun(id, session, input, script);
            }

            StoreMessages(id, flow, tweaks, session, input, text);
            return EmulatorResponse.Json(RunResult(session, input, text, id));
        }));
    }

    /// <summary>A run's reply (called under the lock); by default <see cref="Answer"/>.</summary>
    protected virtual string RunAnswer(JsonObject flow, JsonObject? tweaks, string input) => Answer(flow, tweaks, input);

    /// <summary>How a streamed run sends its reply (called under the lock); by default word by word, then <c>end</c>.</summary>
    protected virtual LangflowStreamScript StreamOf(string text) =>
        new(text.Split(' ').Select((word, i) => i == 0 ? word : " " + word).ToList(), LangflowStreamEnding.End);

    /// <summary>
    /// A run as Langflow 1.4.2 streams it (<c>?stream=true</c>): each event one JSON object and a blank line, no SSE
    /// framing; <c>add_message</c> for the user's echo and the empty AI message, <c>token</c>s, then <c>end</c> with
    /// the same result as a plain run (or an <c>error</c> event, or nothing when the stream just closes).
    /// </summary>
    private static EmulatorResponse StreamedRun(Guid flowId, string session, string input, LangflowStreamScript script)
    {
        var messageId = Guid.NewGuid().ToString();
        return new EmulatorResponse(200, null, "text/event-stream")
        {
            Stream = async (stream, cancellationToken) =>
            {
                async Task SendAsync(string type, JsonNode data)
                {
                    var bytes = System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["event"] = type, ["data"] = data }.ToJsonString() + "\n\n");
                    await stream.WriteAsync(bytes, cancellationToken);
                    await stream.FlushAsync(cancellationToken);
                }

                await SendAsync("add_message", Message(Guid.NewGuid().ToString(), "User", input, session, flowId));
                await SendAsync("add_message", Message(messageId, "Machine", string.Empty, session, flowId));
                foreach (var token in script.Tokens)
                {
                    await SendAsync("token", new JsonObject { ["chunk"] = token, ["id"] = messageId, ["timestamp"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture) });
                }

                switch (script.Ending)
                {
                    case LangflowStreamEnding.End:
                        await SendAsync("end", new JsonObject { ["result"] = RunResult(session, input, string.Concat(script.Tokens), flowId) });
                        break;
                    case LangflowStreamEnding.Error:
                        await SendAsync("error", new JsonObject { ["error"] = "Error running graph: the model provider refused the request" });
                        break;
                }
            },
        };
    }

    /// <summary>The emulated agent's reply: the best retrieved passage when there is one, otherwise a fixed refusal.</summary>
    public static string Answer(JsonObject flow, JsonObject? tweaks, string input)
    {
        var prompt = tweaks?["Prompt-cmp01"] as JsonObject;
        var name = prompt?["agent_name"]?.GetValue<string>() ?? PromptField(flow, "agent_name") ?? "Assistant";
        var context = prompt?["context"]?.GetValue<string>()?.Trim();
        if (string.IsNullOrEmpty(context))
        {
            return $"{name}: I have no documents about \"{input.Trim()}\" yet.";
        }

        var passage = context.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(l => l.Length > 0) ?? context;
        return $"{name}: {(passage.Length > 400 ? passage[..400] : passage)}";
    }

    private static string? PromptField(JsonObject flow, string field) =>
        (flow["data"]?["nodes"] as JsonArray)?.OfType<JsonObject>()
            .Select(n => n["data"]?["node"]?["template"]?[field]?["value"])
            .OfType<JsonValue>().Select(v => v.TryGetValue<string>(out var text) ? text : null).FirstOrDefault(t => !string.IsNullOrEmpty(t));

    private static JsonObject Message(string id, string sender, string text, string session, Guid flowId) => new()
    {
        ["id"] = id,
        ["timestamp"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        ["sender"] = sender,
        ["sender_name"] = sender == "User" ? "User" : "AI",
        ["session_id"] = session,
        ["text"] = text,
        ["flow_id"] = flowId.ToString(),
        ["files"] = new JsonArray(),
        ["error"] = false,
        ["edit"] = false,
        ["category"] = "message",
        ["content_blocks"] = new JsonArray(),
        ["properties"] = new JsonObject(),
    };

    private static JsonObject RunResult(string session, string input, string text, Guid flowId) => new()
    {
        ["session_id"] = session,
        ["outputs"] = new JsonArray(new JsonObject
        {
            ["inputs"] = new JsonObject { ["input_value"] = input },
            ["outputs"] = new JsonArray(new JsonObject
            {
                ["results"] = new JsonObject { ["message"] = new JsonObject { ["text"] = text, ["sender"] = "Machine", ["sender_name"] = "AI", ["session_id"] = session, ["flow_id"] = flowId.ToString(), ["component_id"] = "ChatOutput-cmp01" } },
                ["messages"] = new JsonArray(new JsonObject { ["message"] = text, ["sender"] = "Machine", ["type"] = "text" }),
                ["component_display_name"] = "Chat Output",
                ["component_id"] = "ChatOutput-cmp01",
            }),
        }),
    };

    private EmulatorResponse Locked(Func<EmulatorResponse> handler)
    {
        lock (Sync)
        {
            return handler();
        }
    }

    private EmulatorResponse AsUser(RouteRequest request, Func<EmulatedUser, EmulatorResponse> handler) => Locked(() =>
    {
        if (request.Query("x-api-key") is not null)
        {
            _queryKeyUses++;
        }

        EmulatedUser? user;
        if ((request.Header("x-api-key") ?? request.Query("x-api-key")) is not null)
        {
            user = KeyUser(request);
            if (user is null)
            {
                return EmulatorResponse.Error(403, "Invalid or missing API key");
            }
        }
        else
        {
            var authorization = request.Header("Authorization");
            user = authorization is not null && authorization.StartsWith("Bearer ", StringComparison.Ordinal)
                && _tokens.TryGetValue(authorization["Bearer ".Length..], out var id)
                    ? _users.GetValueOrDefault(id)
                    : null;
            if (user is null)
            {
                return EmulatorResponse.Error(401, "Could not validate credentials");
            }
        }

        return user.IsActive ? handler(user) : EmulatorResponse.Error(401, "User not active");
    });

    private EmulatorResponse AsSuperuser(RouteRequest request, Func<EmulatedUser, EmulatorResponse> handler) => AsUser(request, user =>
        user.IsSuperuser ? handler(user) : EmulatorResponse.Error(400, "The user doesn't have enough privileges"));

    private EmulatedUser? KeyUser(RouteRequest request)
    {
        var secret = request.Header("x-api-key") ?? request.Query("x-api-key");
        return _keys.Values.FirstOrDefault(k => k.Secret == secret) is { } key ? _users.GetValueOrDefault(key.UserId) : null;
    }

    private JsonObject? OwnFlow(RouteRequest request, EmulatedUser user) =>
        Guid.TryParse(request.PathValues["flow_id"], out var id) && _flows.TryGetValue(id, out var flow) && Owner(flow) == user.Id ? flow : null;

    private bool TakeDuplicate(string kind) => _duplicateNext.Remove(kind);

    private void EnsureDefaultProject(Guid userId)
    {
        if (!_projects.Values.Any(p => Owner(p) == userId && p["name"]!.GetValue<string>() == DefaultProjectName))
        {
            NewProject(userId, DefaultProjectName, "Manage your own projects. Download and upload projects.");
        }
    }

    private JsonObject NewProject(Guid userId, string name, string? description)
    {
        var id = Guid.NewGuid();
        var project = new JsonObject
        {
            ["id"] = id.ToString(),
            ["user_id"] = userId.ToString(),
            ["name"] = Unique(_projects, userId, name),
            ["description"] = description,
            ["parent_id"] = null,
        };
        _projects[id] = project;
        return project;
    }

    private JsonObject NewFlow(Guid userId, JsonObject body)
    {
        var id = Guid.NewGuid();
        var flow = new JsonObject
        {
            ["id"] = id.ToString(),
            ["user_id"] = userId.ToString(),
            ["name"] = Unique(_flows, userId, body["name"]!.GetValue<string>()),
            ["description"] = body["description"]?.DeepClone(),
            ["icon"] = null,
            ["icon_bg_color"] = null,
            ["gradient"] = null,
            ["data"] = body["data"]?.DeepClone(),
            ["is_component"] = body["is_component"]?.DeepClone() ?? false,
            ["updated_at"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["webhook"] = body["webhook"]?.DeepClone() ?? false,
            ["endpoint_name"] = body["endpoint_name"]?.GetValue<string>() is { } endpoint ? UniqueEndpoint(userId, endpoint) : null,
            ["tags"] = new JsonArray(),
            ["locked"] = false,
            ["mcp_enabled"] = body["mcp_enabled"]?.DeepClone() ?? false,
            ["action_name"] = null,
            ["action_description"] = null,
            ["access_type"] = body["access_type"]?.DeepClone() ?? "PRIVATE",
            ["folder_id"] = body["folder_id"]?.DeepClone()
                ?? _projects.Values.First(p => Owner(p) == userId && p["name"]!.GetValue<string>() == DefaultProjectName)["id"]!.DeepClone(),
        };
        _flows[id] = flow;
        return flow;
    }

    // Langflow's _new_flow and create_project: a taken name gets " (n)", n one above the highest in use.
    private static string Unique(Dictionary<Guid, JsonObject> items, Guid userId, string name)
    {
        var names = items.Values.Where(i => Owner(i) == userId).Select(i => i["name"]!.GetValue<string>()).ToList();
        if (!names.Contains(name))
        {
            return name;
        }

        var numbers = names.Where(n => n.StartsWith(name + " (", StringComparison.Ordinal))
            .Select(n => NumberSuffix().Match(n)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        return $"{name} ({(numbers.Count == 0 ? 1 : numbers.Max() + 1)})";
    }

    private string UniqueEndpoint(Guid userId, string endpoint)
    {
        var taken = _flows.Values.Where(f => Owner(f) == userId).Select(f => f["endpoint_name"]?.GetValue<string>()).OfType<string>().ToList();
        if (!taken.Contains(endpoint))
        {
            return endpoint;
        }

        var numbers = taken.Where(e => e.StartsWith(endpoint + "-", StringComparison.Ordinal))
            .Select(e => int.TryParse(e[(endpoint.Length + 1)..], out var n) ? n : 0).ToList();
        return $"{endpoint}-{(numbers.Count == 0 ? 1 : numbers.Max() + 1)}";
    }

    private static Guid Owner(JsonObject item) => Guid.Parse(item["user_id"]!.GetValue<string>());

    private static void RemoveOwned(Dictionary<Guid, JsonObject> items, Guid userId)
    {
        foreach (var id in items.Where(i => Owner(i.Value) == userId).Select(i => i.Key).ToList())
        {
            items.Remove(id);
        }
    }

    private static JsonObject UserJson(EmulatedUser user) => new()
    {
        ["id"] = user.Id.ToString(),
        ["username"] = user.Username,
        ["profile_image"] = null,
        ["store_api_key"] = null,
        ["is_active"] = user.IsActive,
        ["is_superuser"] = user.IsSuperuser,
        ["create_at"] = user.Created.ToString("O", CultureInfo.InvariantCulture),
        ["updated_at"] = user.Created.ToString("O", CultureInfo.InvariantCulture),
        ["last_login_at"] = null,
        ["optins"] = new JsonObject { ["github_starred"] = false, ["dialog_dismissed"] = false, ["discord_clicked"] = false },
    };

    private static JsonObject KeyJson(EmulatedKey key, bool masked) => new()
    {
        ["id"] = key.Id.ToString(),
        ["name"] = key.Name,
        ["api_key"] = masked ? key.Secret[..8] + "********" : key.Secret,
        ["user_id"] = key.UserId.ToString(),
        ["is_active"] = true,
        ["total_uses"] = 0,
        ["last_used_at"] = null,
        ["created_at"] = key.Created.ToString("O", CultureInfo.InvariantCulture),
    };

    private static JsonObject FolderJson(JsonObject project) => new()
    {
        ["id"] = project["id"]!.DeepClone(),
        ["name"] = project["name"]!.DeepClone(),
        ["description"] = project["description"]?.DeepClone(),
        ["parent_id"] = null,
    };

    private static JsonObject FlowHeader(JsonObject flow) => new()
    {
        ["id"] = flow["id"]!.DeepClone(),
        ["name"] = flow["name"]!.DeepClone(),
        ["folder_id"] = flow["folder_id"]?.DeepClone(),
        ["is_component"] = flow["is_component"]?.DeepClone(),
        ["endpoint_name"] = flow["endpoint_name"]?.DeepClone(),
        ["description"] = flow["description"]?.DeepClone(),
        ["data"] = null,
        ["access_type"] = flow["access_type"]?.DeepClone(),
        ["tags"] = new JsonArray(),
        ["mcp_enabled"] = flow["mcp_enabled"]?.DeepClone(),
        ["action_name"] = null,
        ["action_description"] = null,
    };

    private static Dictionary<string, string> Form(string? body) =>
        (body ?? string.Empty).Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(pair => pair.Split('=', 2))
            .ToDictionary(
                pair => Uri.UnescapeDataString(pair[0].Replace('+', ' ')),
                pair => pair.Length > 1 ? Uri.UnescapeDataString(pair[1].Replace('+', ' ')) : string.Empty,
                StringComparer.Ordinal);

    [GeneratedRegex(@" \((\d+)\)$")]
    private static partial Regex NumberSuffix();

    private sealed class EmulatedUser(Guid id, string username, string password)
    {
        public Guid Id { get; } = id;

        public string Username { get; } = username;

        public string Password { get; set; } = password;

        public bool IsActive { get; set; }

        public bool IsSuperuser { get; init; }

        public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;
    }

    private sealed record EmulatedKey(Guid Id, Guid UserId, string Name, string Secret)
    {
        public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;
    }
}

/// <summary>How a streamed run ends.</summary>
public enum LangflowStreamEnding
{
    /// <summary>An <c>end</c> event with the whole result, as a finished run.</summary>
    End,

    /// <summary>An <c>error</c> event, then the stream closes.</summary>
    Error,

    /// <summary>The stream closes without <c>end</c> (a worker died).</summary>
    Close,
}

/// <summary>The tokens a streamed run sends and how it ends.</summary>
public sealed record LangflowStreamScript(IReadOnlyList<string> Tokens, LangflowStreamEnding Ending);

/// <summary>A Langflow user as the emulator holds it (the superuser is not listed).</summary>
public sealed record LangflowUser(Guid Id, string Username, bool IsActive);

/// <summary>An API key and its owner.</summary>
public sealed record LangflowKey(Guid Id, Guid UserId, string Name, string Secret);

/// <summary>A project or flow with its owner (and, for flows, the project holding it).</summary>
public sealed record LangflowItem(Guid Id, Guid UserId, string Name, Guid? FolderId);
