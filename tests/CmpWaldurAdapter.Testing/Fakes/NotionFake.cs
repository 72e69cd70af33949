using System.Globalization;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>
/// A stateful Notion API: workspaces keyed by integration token, each with databases, pages and
/// nested blocks. Shapes follow Notion's public reference (https://developers.notion.com/reference),
/// version 2022-06-28:
/// <list type="bullet">
/// <item>intro#pagination and intro#json-conventions: list objects, <c>start_cursor</c>/<c>page_size</c>, <c>has_more</c>/<c>next_cursor</c>.</item>
/// <item>post-database-query: <c>POST /v1/databases/{database_id}/query</c> with page_size and start_cursor in the body.</item>
/// <item>retrieve-a-page and page (page object): properties with one of type title, last_edited_time, url, archived, in_trash.</item>
/// <item>get-block-children and block (block object): type, has_children, rich_text; "may contain fewer than page_size results".</item>
/// <item>rich-text: type/text/annotations/plain_text/href.</item>
/// <item>status-codes and request-limits: the error object; 401 unauthorized, 404 object_not_found, 400 validation_error and missing_version, 429 rate_limited with Retry-After.</item>
/// <item>authentication and versioning: <c>Authorization: Bearer</c> and a required <c>Notion-Version</c>.</item>
/// </list>
/// </summary>
public sealed class NotionFake : Emulator, IFakeUpstream, IDisposable
{
    private readonly Dictionary<string, Workspace> _workspaces = [];
    private readonly Dictionary<string, string> _renewedFrom = [];
    private readonly Dictionary<string, Page> _pages = [];
    private readonly Dictionary<string, Database> _databases = [];
    private readonly Dictionary<string, Block> _blocks = [];
    private DateTimeOffset _clock = new(2024, 3, 1, 9, 0, 0, TimeSpan.Zero);
    private int _rateLimited;
    private int _retryAfterSeconds = 1;

    public NotionFake()
    {
        Upstream = new FakeUpstream(this);
        Url = Upstream.Url;
        Route("POST", "/v1/databases/{id}/query", QueryDatabase);
        Route("GET", "/v1/pages/{id}", RetrievePage);
        Route("GET", "/v1/blocks/{id}/children", BlockChildren);
    }

    public FakeUpstream Upstream { get; }

    public void Dispose() => Upstream.Dispose();

    /// <summary>Most blocks per children page; Notion may answer fewer than page_size, so small values force paging.</summary>
    public int BlockPageLimit { get; set; } = 100;

    /// <summary>Creates a workspace reachable with <paramref name="token"/>.</summary>
    public void AddWorkspace(string token)
    {
        lock (Sync)
        {
            _workspaces[token] = new Workspace(token);
        }
    }

    /// <summary>The token is revoked: Notion answers 401 unauthorized from now on.</summary>
    public void ExpireToken(string token)
    {
        lock (Sync)
        {
            _workspaces[token].Expired = true;
        }
    }

    /// <summary>
    /// The integration's secret is regenerated, as Notion's "Refresh" does: <paramref name="token"/> stops working and
    /// <paramref name="renewed"/> reads the same pages.
    /// </summary>
    public void RenewToken(string token, string renewed)
    {
        lock (Sync)
        {
            _workspaces[token].Expired = true;
            _workspaces[renewed] = new Workspace(renewed);
            _renewedFrom[renewed] = _renewedFrom.GetValueOrDefault(token, token);
        }
    }

    /// <summary>The next <paramref name="times"/> requests get 429 rate_limited with Retry-After.</summary>
    public void RateLimit(int times, int retryAfterSeconds = 1)
    {
        lock (Sync)
        {
            _rateLimited = times;
            _retryAfterSeconds = retryAfterSeconds;
        }
    }

    public string AddDatabase(string token)
    {
        var id = NewId();
        lock (Sync)
        {
            _databases[id] = new Database(id, token);
        }

        return id;
    }

    /// <summary>A page at the workspace's top level or in a database; its title property is named as Notion names it there.</summary>
    public string AddPage(string token, string title, string? databaseId = null, params FakeBlock[] blocks)
    {
        var id = NewId();
        lock (Sync)
        {
            var page = new Page(id, token, title, databaseId, Tick());
            _pages[id] = page;
            page.Children.AddRange(blocks.Select(b => Store(b, id)));
            if (databaseId is not null)
            {
                _databases[databaseId].Pages.Add(id);
            }
        }

        return id;
    }

    /// <summary>Replaces a page's content and title, moving its last_edited_time on as Notion does.</summary>
    public void EditPage(string pageId, string? title = null, params FakeBlock[] blocks)
    {
        lock (Sync)
        {
            var page = _pages[pageId];
            page.Title = title ?? page.Title;
            page.Children.Clear();
            page.Children.AddRange(blocks.Select(b => Store(b, pageId)));
            page.LastEdited = Tick();
        }
    }

    /// <summary>Moves a page to the trash: queries no longer list it.</summary>
    public void TrashPage(string pageId)
    {
        lock (Sync)
        {
            _pages[pageId].InTrash = true;
            _pages[pageId].LastEdited = Tick();
        }
    }

    public string LastEdited(string pageId)
    {
        lock (Sync)
        {
            return Iso(_pages[pageId].LastEdited);
        }
    }

    /// <summary>The token of the workspace that holds a page, database or block; null when unknown.</summary>
    public string? OwnerToken(string id)
    {
        lock (Sync)
        {
            return _pages.TryGetValue(id, out var page) ? page.Token
                : _databases.TryGetValue(id, out var database) ? database.Token
                : _blocks.TryGetValue(id, out var block) ? _pages[block.PageId].Token
                : null;
        }
    }

    // Block builders, as the API returns them.
    public static FakeBlock Paragraph(params JsonObject[] text) => new("paragraph", Rich(text));

    public static FakeBlock Paragraph(string text) => Paragraph(Text(text));

    public static FakeBlock Heading(int level, string text) => new($"heading_{level}", Rich(Text(text)));

    public static FakeBlock Bullet(string text, params FakeBlock[] children) => new("bulleted_list_item", Rich(Text(text)), children);

    public static FakeBlock Numbered(string text, params FakeBlock[] children) => new("numbered_list_item", Rich(Text(text)), children);

    public static FakeBlock ToDo(string text, bool done) => new("to_do", With(Rich(Text(text)), "checked", done));

    public static FakeBlock Toggle(string text, params FakeBlock[] children) => new("toggle", Rich(Text(text)), children);

    public static FakeBlock Quote(string text) => new("quote", Rich(Text(text)));

    public static FakeBlock Callout(string emoji, string text) =>
        new("callout", With(Rich(Text(text)), "icon", new JsonObject { ["type"] = "emoji", ["emoji"] = emoji }));

    public static FakeBlock Code(string language, string code) => new("code", With(Rich(Text(code)), "language", language));

    public static FakeBlock Divider() => new("divider", []);

    public static FakeBlock ChildPage(string title) => new("child_page", new JsonObject { ["title"] = title });

    public static FakeBlock Table(params string[][] rows) =>
        new("table", new JsonObject { ["table_width"] = rows[0].Length, ["has_column_header"] = true, ["has_row_header"] = false },
            [.. rows.Select(r => new FakeBlock("table_row", new JsonObject { ["cells"] = new JsonArray([.. r.Select(c => (JsonNode)new JsonArray(Text(c)))]) }))]);

    /// <summary>A rich text object of type text.</summary>
    public static JsonObject Text(string content, bool bold = false, bool italic = false, bool code = false, string? link = null) => new()
    {
        ["type"] = "text",
        ["text"] = new JsonObject { ["content"] = content, ["link"] = link is null ? null : new JsonObject { ["url"] = link } },
        ["annotations"] = new JsonObject
        {
            ["bold"] = bold,
            ["italic"] = italic,
            ["strikethrough"] = false,
            ["underline"] = false,
            ["code"] = code,
            ["color"] = "default",
        },
        ["plain_text"] = content,
        ["href"] = link,
    };

    private static JsonObject Rich(params JsonObject[] text) => new()
    {
        ["rich_text"] = new JsonArray([.. text.Select(t => (JsonNode)t.DeepClone())]),
        ["color"] = "default",
    };

    private static JsonObject With(JsonObject data, string name, JsonNode? value)
    {
        data[name] = value;
        return data;
    }

    private string Store(FakeBlock block, string parentId, string? pageId = null)
    {
        var id = NewId();
        var stored = new Block(id, pageId ?? parentId, parentId, block.Type, block.Data, [.. block.Children.Select(c => Store(c, id, pageId ?? parentId))]);
        _blocks[id] = stored;
        return id;
    }

    private EmulatorResponse QueryDatabase(RouteRequest request)
    {
        var id = request.PathValues["id"];
        lock (Sync)
        {
            if (Refuse(request) is { } refused)
            {
                return refused;
            }

            if (_pages.TryGetValue(id, out var page) && page.Token == OwnerOf(request))
            {
                return Error(400, "validation_error", $"Provided ID {id} is a page, not a database. Use the retrieve page API instead.");
            }

            if (!_databases.TryGetValue(id, out var database) || database.Token != OwnerOf(request))
            {
                return Error(404, "object_not_found", $"Could not find database with ID: {id}. Make sure the relevant pages and databases are shared with your integration.");
            }

            var body = request.JsonObject;
            var pageSize = Math.Clamp(body["page_size"]?.GetValue<int>() ?? 100, 1, 100);
            var pages = database.Pages.Select(p => _pages[p]).Where(p => !p.InTrash).ToList();
            return ListOf(pages.Select(PageJson).ToList(), pages.Select(p => p.Id).ToList(), body["start_cursor"]?.GetValue<string>(), pageSize, "page_or_database");
        }
    }

    private EmulatorResponse RetrievePage(RouteRequest request)
    {
        var id = request.PathValues["id"];
        lock (Sync)
        {
            if (Refuse(request) is { } refused)
            {
                return refused;
            }

            return _pages.TryGetValue(id, out var page) && page.Token == OwnerOf(request)
                ? Ok(PageJson(page))
                : Error(404, "object_not_found", $"Could not find page with ID: {id}. Make sure the relevant pages and databases are shared with your integration.");
        }
    }

    private EmulatorResponse BlockChildren(RouteRequest request)
    {
        var id = request.PathValues["id"];
        lock (Sync)
        {
            if (Refuse(request) is { } refused)
            {
                return refused;
            }

            List<string> children;
            if (_pages.TryGetValue(id, out var page) && page.Token == OwnerOf(request))
            {
                children = page.Children;
            }
            else if (_blocks.TryGetValue(id, out var block) && _pages[block.PageId].Token == OwnerOf(request))
            {
                children = block.Children;
            }
            else
            {
                return Error(404, "object_not_found", $"Could not find block with ID: {id}. Make sure the relevant pages and databases are shared with your integration.");
            }

            var pageSize = int.TryParse(request.Query("page_size"), CultureInfo.InvariantCulture, out var size) ? Math.Clamp(size, 1, 100) : 100;
            return ListOf(children.Select(c => BlockJson(_blocks[c])).ToList(), children, request.Query("start_cursor"), Math.Min(pageSize, BlockPageLimit), "block");
        }
    }

    /// <summary>Checks version, token and rate limit, in Notion's order: 400, 401, 429.</summary>
    private EmulatorResponse? Refuse(RouteRequest request)
    {
        if (string.IsNullOrEmpty(request.Header("Notion-Version")))
        {
            return Error(400, "missing_version", "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.");
        }

        var token = TokenOf(request);
        if (token is null || !_workspaces.TryGetValue(token, out var workspace) || workspace.Expired)
        {
            return Error(401, "unauthorized", "API token is invalid.");
        }

        if (_rateLimited > 0)
        {
            _rateLimited--;
            return Error(429, "rate_limited", "You have been rate limited. Please try again in a few minutes.") with
            {
                Headers = new Dictionary<string, string> { ["Retry-After"] = _retryAfterSeconds.ToString(CultureInfo.InvariantCulture) },
            };
        }

        return null;
    }

    /// <summary>The token the request's workspace first had: pages keep their owner across renewed secrets.</summary>
    private string? OwnerOf(RouteRequest request) => TokenOf(request) is { } token ? _renewedFrom.GetValueOrDefault(token, token) : null;

    private static string? TokenOf(RouteRequest request) =>
        request.Header("Authorization") is { } header && header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : null;

    /// <summary>A list object; the cursor is the id of the first item of the next page, as Notion's are.</summary>
    private static EmulatorResponse ListOf(List<JsonObject> items, List<string> ids, string? cursor, int pageSize, string type)
    {
        var start = cursor is null ? 0 : ids.IndexOf(cursor);
        if (start < 0)
        {
            return Error(400, "validation_error", $"body failed validation: start_cursor {cursor} is not valid.");
        }

        var slice = items.Skip(start).Take(pageSize).ToList();
        var hasMore = start + slice.Count < items.Count;
        return Ok(new JsonObject
        {
            ["object"] = "list",
            ["results"] = new JsonArray([.. slice]),
            ["next_cursor"] = hasMore ? ids[start + slice.Count] : null,
            ["has_more"] = hasMore,
            ["type"] = type,
            [type] = new JsonObject(),
            ["request_id"] = Guid.NewGuid().ToString(),
        });
    }

    /// <summary>Answers set a cookie, as the CDN in front of api.notion.com does: a client must not send it back for another tenant.</summary>
    private static EmulatorResponse Ok(JsonObject body) => EmulatorResponse.Json(body) with
    {
        Headers = new Dictionary<string, string> { ["Set-Cookie"] = $"__cf_bm={Guid.NewGuid():N}; path=/; domain=127.0.0.1; HttpOnly" },
    };

    private static EmulatorResponse Error(int status, string code, string message) => EmulatorResponse.Json(
        new JsonObject
        {
            ["object"] = "error",
            ["status"] = status,
            ["code"] = code,
            ["message"] = message,
            ["request_id"] = Guid.NewGuid().ToString(),
        },
        status);

    private static JsonObject PageJson(Page page)
    {
        var titleProperty = page.DatabaseId is null ? "title" : "Name";
        return new JsonObject
        {
            ["object"] = "page",
            ["id"] = page.Id,
            ["created_time"] = Iso(page.Created),
            ["last_edited_time"] = Iso(page.LastEdited),
            ["created_by"] = new JsonObject { ["object"] = "user", ["id"] = "8a1c5d1e-0000-4000-8000-000000000001" },
            ["last_edited_by"] = new JsonObject { ["object"] = "user", ["id"] = "8a1c5d1e-0000-4000-8000-000000000001" },
            ["cover"] = null,
            ["icon"] = null,
            ["parent"] = page.DatabaseId is null
                ? new JsonObject { ["type"] = "workspace", ["workspace"] = true }
                : new JsonObject { ["type"] = "database_id", ["database_id"] = page.DatabaseId },
            ["archived"] = page.InTrash,
            ["in_trash"] = page.InTrash,
            ["properties"] = new JsonObject
            {
                [titleProperty] = new JsonObject
                {
                    ["id"] = "title",
                    ["type"] = "title",
                    ["title"] = new JsonArray(Text(page.Title)),
                },
            },
            ["url"] = $"https://www.notion.so/{page.Title.Replace(' ', '-')}-{page.Id.Replace("-", string.Empty)}",
            ["public_url"] = null,
        };
    }

    private JsonObject BlockJson(Block block)
    {
        var page = _pages[block.PageId];
        return new JsonObject
        {
            ["object"] = "block",
            ["id"] = block.Id,
            ["parent"] = block.ParentId == block.PageId
                ? new JsonObject { ["type"] = "page_id", ["page_id"] = block.PageId }
                : new JsonObject { ["type"] = "block_id", ["block_id"] = block.ParentId },
            ["created_time"] = Iso(page.Created),
            ["last_edited_time"] = Iso(page.LastEdited),
            ["created_by"] = new JsonObject { ["object"] = "user", ["id"] = "8a1c5d1e-0000-4000-8000-000000000001" },
            ["last_edited_by"] = new JsonObject { ["object"] = "user", ["id"] = "8a1c5d1e-0000-4000-8000-000000000001" },
            ["has_children"] = block.Children.Count > 0,
            ["archived"] = false,
            ["in_trash"] = false,
            ["type"] = block.Type,
            [block.Type] = block.Data.DeepClone(),
        };
    }

    // Notion's timestamps are ISO 8601 with milliseconds, rounded to the minute.
    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private DateTimeOffset Tick() => _clock = _clock.AddMinutes(1);

    private static string NewId() => Guid.NewGuid().ToString();

    private sealed class Workspace(string token)
    {
        public string Token { get; } = token;

        public bool Expired { get; set; }
    }

    private sealed class Database(string id, string token)
    {
        public string Id { get; } = id;

        public string Token { get; } = token;

        public List<string> Pages { get; } = [];
    }

    private sealed class Page(string id, string token, string title, string? databaseId, DateTimeOffset created)
    {
        public string Id { get; } = id;

        public string Token { get; } = token;

        public string Title { get; set; } = title;

        public string? DatabaseId { get; } = databaseId;

        public DateTimeOffset Created { get; } = created;

        public DateTimeOffset LastEdited { get; set; } = created;

        public bool InTrash { get; set; }

        public List<string> Children { get; } = [];
    }

    private sealed record Block(string Id, string PageId, string ParentId, string Type, JsonObject Data, List<string> Children);
}

/// <summary>A block to put in <see cref="NotionFake"/>: its type, the type-specific object, and child blocks.</summary>
public sealed record FakeBlock(string Type, JsonObject Data, IReadOnlyList<FakeBlock> Children)
{
    public FakeBlock(string type, JsonObject data)
        : this(type, data, [])
    {
    }
}
