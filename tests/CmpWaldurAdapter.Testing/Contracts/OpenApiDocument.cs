using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// An OpenAPI document (3.0 or 3.1) loaded from YAML or JSON, optionally gzip-compressed, as a
/// System.Text.Json node tree. Documents loaded from a file are cached for the process, so the
/// tree is shared: treat <see cref="Root"/> as read-only.
/// </summary>
public sealed class OpenApiDocument
{
    private static readonly ConcurrentDictionary<string, Lazy<OpenApiDocument>> Cache = new(StringComparer.Ordinal);

    private OpenApiDocument(JsonObject root, string name, string? sourcePath)
    {
        Root = root;
        Name = name;
        SourcePath = sourcePath;
        OpenApiVersion = root["openapi"] is JsonValue version && version.TryGetValue<string>(out var text) ? text : "";
        // 3.1 is JSON Schema 2020-12: $ref siblings apply and 'null' is a type.
        IsOpenApi31 = OpenApiVersion.StartsWith("3.1", StringComparison.Ordinal);
    }

    /// <summary>The whole document.</summary>
    public JsonObject Root { get; }

    /// <summary>File name (or "inline spec"), used in messages.</summary>
    public string Name { get; }

    /// <summary>Full path of the file this was loaded from, or null for parsed text.</summary>
    public string? SourcePath { get; }

    /// <summary>The <c>openapi</c> field, e.g. "3.0.3".</summary>
    public string OpenApiVersion { get; }

    /// <summary>True for OpenAPI 3.1.x.</summary>
    public bool IsOpenApi31 { get; }

    /// <summary>
    /// Loads (once per process and full path, thread-safe) a <c>.yaml</c>, <c>.yml</c> or
    /// <c>.json</c> file, or any of those with a <c>.gz</c> suffix.
    /// </summary>
    public static OpenApiDocument Load(string path)
    {
        var fullPath = Path.GetFullPath(path);
        var lazy = Cache.GetOrAdd(
            fullPath,
            static key => new Lazy<OpenApiDocument>(() => LoadUncached(key), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            // Do not cache a failure (e.g. a file written after the first attempt).
            Cache.TryRemove(new KeyValuePair<string, Lazy<OpenApiDocument>>(fullPath, lazy));
            throw;
        }
    }

    /// <summary>Parses a document from text (JSON when it starts with '{', YAML otherwise). Not cached.</summary>
    public static OpenApiDocument Parse(string text, string name = "inline spec")
    {
        return new OpenApiDocument(ParseRoot(text, looksLikeJson: null, name), name, sourcePath: null);
    }

    /// <summary>
    /// Reads any supported file into a node tree without caching or OpenAPI checks; used for
    /// files that are compared rather than validated against.
    /// </summary>
    public static JsonNode? ReadNode(string path)
    {
        var (text, isJson) = ReadText(path);
        return isJson ? JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) : YamlJsonConverter.Parse(text);
    }

    /// <summary>Reads a file's bytes, decompressing <c>.gz</c>.</summary>
    public static byte[] ReadBytes(string path)
    {
        if (!path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            return File.ReadAllBytes(path);
        }

        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        gzip.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>
    /// Resolves a local reference such as <c>#/components/schemas/Order</c> (a JSON pointer after
    /// '#'); returns false when the reference is not local or points nowhere.
    /// </summary>
    public bool TryResolve(string reference, out JsonNode? node)
    {
        node = null;
        if (!reference.StartsWith('#'))
        {
            return false;
        }

        JsonNode? current = Root;
        var pointer = Uri.UnescapeDataString(reference[1..]);
        if (pointer.Length == 0)
        {
            node = current;
            return true;
        }

        if (pointer[0] != '/')
        {
            return false;
        }

        foreach (var rawToken in pointer[1..].Split('/'))
        {
            var token = rawToken.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            switch (current)
            {
                case JsonObject obj when obj.TryGetPropertyValue(token, out var child):
                    current = child;
                    break;
                case JsonArray array when int.TryParse(token, out var index) && index >= 0 && index < array.Count:
                    current = array[index];
                    break;
                default:
                    return false;
            }
        }

        node = current;
        return true;
    }

    public override string ToString() => $"{Name} (OpenAPI {OpenApiVersion})";

    private static OpenApiDocument LoadUncached(string fullPath)
    {
        var (text, isJson) = ReadText(fullPath);
        var root = ParseRoot(text, isJson, fullPath);
        return new OpenApiDocument(root, Path.GetFileName(fullPath), fullPath);
    }

    private static (string Text, bool IsJson) ReadText(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"OpenAPI document not found: {path}", path);
        }

        var name = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        var text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(ReadBytes(path));
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..];
        }

        return (text, name.EndsWith(".json", StringComparison.OrdinalIgnoreCase));
    }

    private static JsonObject ParseRoot(string text, bool? looksLikeJson, string source)
    {
        var isJson = looksLikeJson ?? text.TrimStart().StartsWith('{');
        var root = isJson
            ? JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false })
            : YamlJsonConverter.Parse(text);
        if (root is not JsonObject obj)
        {
            throw new InvalidDataException($"{source}: an OpenAPI document must be a mapping at the top level");
        }

        if (isJson)
        {
            // JsonNode.Parse materialises objects lazily and that is not thread-safe; the cached
            // tree is read from parallel tests, so build every node once, here.
            Materialize(obj);
        }

        return obj;
    }

    private static void Materialize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, child) in obj)
                {
                    Materialize(child);
                }

                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    Materialize(child);
                }

                break;
        }
    }
}
