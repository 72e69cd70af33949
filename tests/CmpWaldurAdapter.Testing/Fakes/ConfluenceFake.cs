using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>
/// A stateful Confluence Cloud site speaking REST API v1, after Atlassian's reference
/// (https://developer.atlassian.com/cloud/confluence/rest/v1/):
/// <list type="bullet">
/// <item>api-group-content, "Get content": <c>GET /wiki/rest/api/content</c> with spaceKey, type, status, expand, start, limit;
/// a ContentArray <c>{results, start, limit, size, _links{base, context, self, next?}}</c>.</item>
/// <item>Content object: id, type, status, title, version (only with expand=version), body.export_view (only with that expand), _links.webui relative to the /wiki base, _expandable otherwise.</item>
/// <item>api-group-space, "Get space": <c>GET /wiki/rest/api/space/{spaceKey}</c>, 404 when there is no such space.</item>
/// <item>"Basic auth for REST APIs": <c>Authorization: Basic base64(email:api_token)</c>; refused credentials answer 401.</item>
/// <item>Errors as the v1 API writes them: <c>{statusCode, data{authorized, valid, errors, successful}, message, reason}</c>.</item>
/// </list>
/// </summary>
public sealed class ConfluenceFake : Emulator, IFakeUpstream, IDisposable
{
    private readonly Dictionary<string, Account> _accounts = [];
    private readonly Dictionary<string, Space> _spaces = [];
    private readonly Dictionary<string, ContentPage> _pages = [];
    private DateTimeOffset _clock = new(2024, 3, 1, 9, 0, 0, TimeSpan.Zero);
    private int _nextId = 65_537;

    public ConfluenceFake()
    {
        Upstream = new FakeUpstream(this);
        Url = Upstream.Url;
        Route("GET", "/wiki/rest/api/space/{key}", GetSpace);
        Route("GET", "/wiki/rest/api/content", GetContent);
    }

    public FakeUpstream Upstream { get; }

    public void Dispose() => Upstream.Dispose();

    /// <summary>Largest limit honoured, as Confluence caps it when bodies are expanded.</summary>
    public int MaxLimit { get; set; } = 100;

    public void AddAccount(string email, string apiToken)
    {
        lock (Sync)
        {
            _accounts[apiToken] = new Account(email, apiToken);
        }
    }

    /// <summary>The API token is revoked: 401 from now on.</summary>
    public void ExpireToken(string apiToken)
    {
        lock (Sync)
        {
            _accounts[apiToken].Expired = true;
        }
    }

    /// <summary>A space only <paramref name="email"/> may read.</summary>
    public void AddSpace(string key, string name, string email)
    {
        lock (Sync)
        {
            _spaces[key] = new Space(key, name, email);
        }
    }

    public string AddPage(string spaceKey, string title, string html)
    {
        lock (Sync)
        {
            var id = (_nextId++).ToString(CultureInfo.InvariantCulture);
            var page = new ContentPage(id, spaceKey, title, html, Tick());
            _pages[id] = page;
            _spaces[spaceKey].Pages.Add(id);
            return id;
        }
    }

    /// <summary>Publishes a new version of a page.</summary>
    public void EditPage(string id, string html, string? title = null)
    {
        lock (Sync)
        {
            var page = _pages[id];
            page.Html = html;
            page.Title = title ?? page.Title;
            page.Version++;
            page.When = Tick();
        }
    }

    public void TrashPage(string id)
    {
        lock (Sync)
        {
            _pages[id].Status = "trashed";
        }
    }

    public int Version(string id)
    {
        lock (Sync)
        {
            return _pages[id].Version;
        }
    }

    /// <summary>The email a request authenticated as, from its Basic header; null when absent or malformed.</summary>
    public static (string Email, string Token)? Credentials(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Basic ", StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization["Basic ".Length..]));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? null : (decoded[..colon], decoded[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private EmulatorResponse GetSpace(RouteRequest request)
    {
        var key = request.PathValues["key"];
        lock (Sync)
        {
            if (Authenticate(request) is not { } account)
            {
                return Unauthorized();
            }

            if (!_spaces.TryGetValue(key, out var space) || space.Email != account.Email)
            {
                return Error(404, "Not Found", $"No space found with key : {key}");
            }

            return Ok(new JsonObject
            {
                ["id"] = 98_304 + space.Key.Length,
                ["key"] = space.Key,
                ["name"] = space.Name,
                ["type"] = "global",
                ["status"] = "current",
                ["_links"] = new JsonObject { ["webui"] = $"/spaces/{space.Key}", ["self"] = $"{Base}/rest/api/space/{space.Key}" },
                ["_expandable"] = new JsonObject { ["homepage"] = "/rest/api/content/1", ["description"] = "" },
            });
        }
    }

    private EmulatorResponse GetContent(RouteRequest request)
    {
        lock (Sync)
        {
            if (Authenticate(request) is not { } account)
            {
                return Unauthorized();
            }

            var key = request.Query("spaceKey");
            var type = request.Query("type") ?? "page";
            var status = request.Query("status") ?? "current";
            // WireMock splits query values at commas; Confluence reads expand as one comma-separated list.
            var expand = string.Join(',', request.QueryAll("expand")).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var start = int.TryParse(request.Query("start"), CultureInfo.InvariantCulture, out var s) ? s : 0;
            var limit = Math.Clamp(int.TryParse(request.Query("limit"), CultureInfo.InvariantCulture, out var l) ? l : 25, 1, MaxLimit);

            // An unknown or unreadable space lists nothing, as Confluence does; the space endpoint is the one that says 404.
            var pages = key is not null && _spaces.TryGetValue(key, out var space) && space.Email == account.Email && type == "page"
                ? space.Pages.Select(id => _pages[id]).Where(p => p.Status == status).ToList()
                : [];
            var slice = pages.Skip(start).Take(limit).ToList();
            var links = new JsonObject
            {
                ["base"] = Base,
                ["context"] = "/wiki",
                ["self"] = $"{Base}/rest/api/content?spaceKey={key}&type={type}&status={status}",
            };
            if (start + slice.Count < pages.Count)
            {
                links["next"] = $"/rest/api/content?spaceKey={key}&type={type}&status={status}&expand={string.Join(',', expand)}&limit={limit}&start={start + limit}";
            }

            return Ok(new JsonObject
            {
                ["results"] = new JsonArray([.. slice.Select(p => (JsonNode)ContentJson(p, expand))]),
                ["start"] = start,
                ["limit"] = limit,
                ["size"] = slice.Count,
                ["_links"] = links,
            });
        }
    }

    private Account? Authenticate(RouteRequest request) =>
        Credentials(request.Header("Authorization")) is { } credentials
        && _accounts.TryGetValue(credentials.Token, out var account)
        && account.Email == credentials.Email
        && !account.Expired
            ? account
            : null;

    private JsonObject ContentJson(ContentPage page, string[] expand)
    {
        var content = new JsonObject
        {
            ["id"] = page.Id,
            ["type"] = "page",
            ["status"] = page.Status,
            ["title"] = page.Title,
        };
        var expandable = new JsonObject { ["children"] = $"/rest/api/content/{page.Id}/child", ["space"] = $"/rest/api/space/{page.SpaceKey}" };
        if (expand.Contains("version"))
        {
            content["version"] = new JsonObject
            {
                ["by"] = new JsonObject { ["type"] = "known", ["accountId"] = "5b10ac8d82e05b22cc7d4ef5", ["displayName"] = "Mia Krystof" },
                ["when"] = page.When.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
                ["number"] = page.Version,
                ["minorEdit"] = false,
            };
        }
        else
        {
            expandable["version"] = string.Empty;
        }

        if (expand.Contains("body.export_view"))
        {
            content["body"] = new JsonObject
            {
                ["export_view"] = new JsonObject { ["value"] = page.Html, ["representation"] = "export_view" },
                ["_expandable"] = new JsonObject { ["storage"] = string.Empty, ["view"] = string.Empty },
            };
        }
        else
        {
            expandable["body"] = string.Empty;
        }

        content["_expandable"] = expandable;
        content["_links"] = new JsonObject
        {
            ["webui"] = $"/spaces/{page.SpaceKey}/pages/{page.Id}/{Uri.EscapeDataString(page.Title.Replace(' ', '+'))}",
            ["tinyui"] = $"/x/{page.Id}",
            ["self"] = $"{Base}/rest/api/content/{page.Id}",
        };
        return content;
    }

    private string Base => Url.ToString().TrimEnd('/') + "/wiki";

    /// <summary>Answers set the XSRF cookie, as Confluence Cloud does: a client must not send it back for another tenant.</summary>
    private static EmulatorResponse Ok(JsonObject body) => EmulatorResponse.Json(body) with
    {
        Headers = new Dictionary<string, string> { ["Set-Cookie"] = $"atlassian.xsrf.token={Guid.NewGuid():N}_lin; Path=/; SameSite=None; Secure" },
    };

    private static EmulatorResponse Unauthorized() => Error(401, "Unauthorized", "Client must be authenticated to access this resource.");

    private static EmulatorResponse Error(int status, string reason, string message) => EmulatorResponse.Json(
        new JsonObject
        {
            ["statusCode"] = status,
            ["data"] = new JsonObject
            {
                ["authorized"] = status != 401,
                ["valid"] = true,
                ["errors"] = new JsonArray(),
                ["successful"] = false,
            },
            ["message"] = message,
            ["reason"] = reason,
        },
        status);

    private DateTimeOffset Tick() => _clock = _clock.AddMinutes(3);

    private sealed class Account(string email, string token)
    {
        public string Email { get; } = email;

        public string Token { get; } = token;

        public bool Expired { get; set; }
    }

    private sealed class Space(string key, string name, string email)
    {
        public string Key { get; } = key;

        public string Name { get; } = name;

        public string Email { get; } = email;

        public List<string> Pages { get; } = [];
    }

    private sealed class ContentPage(string id, string spaceKey, string title, string html, DateTimeOffset when)
    {
        public string Id { get; } = id;

        public string SpaceKey { get; } = spaceKey;

        public string Title { get; set; } = title;

        public string Html { get; set; } = html;

        public int Version { get; set; } = 1;

        public DateTimeOffset When { get; set; } = when;

        public string Status { get; set; } = "current";
    }
}
