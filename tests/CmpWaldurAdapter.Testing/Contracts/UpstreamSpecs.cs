using System.Collections.Concurrent;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// The pinned upstream specs of the repository, loaded lazily and once per process.
/// </summary>
/// <remarks>
/// Adding a spec: put the file under openapi/ (trimmed ones via scripts/trim-openapi.py), add a
/// path constant and a property here, and the trimmed-vs-upstream tests pick it up from the
/// script's SPECS table.
/// </remarks>
public static class UpstreamSpecs
{
    /// <summary>Trimmed Waldur spec, what the adapter may call.</summary>
    public const string WaldurPath = "openapi/waldur.yaml";

    /// <summary>Pinned full Waldur 8.0.5 spec (gzip).</summary>
    public const string WaldurUpstreamPath = "openapi/upstream/waldur/waldur-openapi-schema-8.0.5.yaml.gz";

    /// <summary>Trimmed Langflow 1.4.2 spec (OpenAPI 3.1), what the adapter may call.</summary>
    public const string LangflowPath = "openapi/langflow.json";

    /// <summary>Pinned full Langflow 1.4.2 spec.</summary>
    public const string LangflowUpstreamPath = "openapi/upstream/langflow/openapi.json";

    /// <summary>Hand-written RAGFlow spec (RAGFlow publishes Markdown, not OpenAPI).</summary>
    public const string RagflowPath = "openapi/ragflow.yaml";

    /// <summary>The trimming script, whose SPECS table lists the trimmed/upstream pairs.</summary>
    public const string TrimScriptPath = "scripts/trim-openapi.py";

    private const string SolutionFile = "CmpWaldurAdapter.sln";

    private static readonly Lazy<string> Root = new(FindRepositoryRoot);
    private static readonly ConcurrentDictionary<string, OpenApiContract> Contracts = new(StringComparer.Ordinal);

    /// <summary>The folder holding CmpWaldurAdapter.sln, found by walking up from the test binaries.</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>Trimmed Waldur contract (openapi/waldur.yaml), auth not enforced.</summary>
    public static OpenApiContract Waldur => Contract(WaldurPath);

    /// <summary>Full pinned Waldur contract; for checks about what upstream allows beyond the trim.</summary>
    public static OpenApiContract WaldurUpstream => Contract(WaldurUpstreamPath);

    /// <summary>Full pinned Langflow contract.</summary>
    public static OpenApiContract LangflowUpstream => Contract(LangflowUpstreamPath);

    /// <summary>Trimmed Langflow contract (openapi/langflow.json), auth not enforced.</summary>
    public static OpenApiContract Langflow => Contract(LangflowPath);

    /// <summary>Hand-written RAGFlow contract (openapi/ragflow.yaml), auth not enforced.</summary>
    public static OpenApiContract Ragflow => Contract(RagflowPath);

    /// <summary>Absolute path of a repository-relative path such as <c>openapi/waldur.yaml</c>.</summary>
    public static string PathOf(string relativePath) =>
        Path.GetFullPath(Path.Combine(RepositoryRoot, relativePath.Replace('/', Path.DirectorySeparatorChar)));

    /// <summary>A (cached) contract for any repository-relative spec file.</summary>
    public static OpenApiContract Contract(string relativePath)
    {
        if (Contracts.TryGetValue(relativePath, out var cached))
        {
            return cached;
        }

        // Documents are cached by OpenApiDocument.Load, so a lost race costs one cheap wrapper.
        var contract = OpenApiContract.Load(PathOf(relativePath));
        return Contracts.GetOrAdd(relativePath, contract);
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, SolutionFile)))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No folder above {AppContext.BaseDirectory} contains {SolutionFile}");
    }
}
