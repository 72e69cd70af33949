using CmpWaldurAdapter.Core.Catalogue;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Catalogue;

/// <summary>Where the catalogue lives (configuration section <c>Catalogue</c>).</summary>
public sealed class CatalogueOptions
{
    public const string SectionName = "Catalogue";

    /// <summary>The catalogue folder; relative paths resolve against the working directory, then the application folder.</summary>
    public string Directory { get; set; } = "catalogue";
}

/// <summary>
/// The marketplace's offerings, read from the catalogue folder (one YAML file per offering) once at
/// start-up. A malformed file stops the adapter with every problem named by file, line and field.
/// </summary>
public sealed class OfferingCatalogue
{
    private readonly Dictionary<string, CatalogueEntry> _entries;

    public OfferingCatalogue(IOptions<CatalogueOptions> options)
        : this(Resolve(options.Value.Directory))
    {
    }

    public OfferingCatalogue(string directory)
    {
        Directory = directory;
        _entries = Load(directory).ToDictionary(e => e.Slug, StringComparer.Ordinal);
    }

    public string Directory { get; }

    public IReadOnlyCollection<CatalogueEntry> Entries => _entries.Values;

    public CatalogueEntry? Find(string slug) => _entries.GetValueOrDefault(slug);

    public CatalogueEntry Get(string slug) =>
        Find(slug) ?? throw new KeyNotFoundException($"The catalogue has no offering '{slug}'.");

    /// <summary>The full path of a file the catalogue refers to (a flow template).</summary>
    public string PathOf(string relative) => Path.Combine(Directory, relative);

    public static IReadOnlyList<CatalogueEntry> Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            throw new CatalogueException([$"{directory}: the catalogue folder does not exist."]);
        }

        var entries = new List<CatalogueEntry>();
        var problems = new List<string>();
        foreach (var file in System.IO.Directory.GetFiles(directory, "*.yaml").Order(StringComparer.Ordinal))
        {
            try
            {
                var entry = CatalogueReader.Parse(File.ReadAllText(file), file);
                problems.AddRange(MissingTemplates(directory, entry, file));
                entries.Add(entry);
            }
            catch (CatalogueException exception)
            {
                problems.AddRange(exception.Problems);
            }
        }

        if (problems.Count > 0)
        {
            throw new CatalogueException(problems);
        }

        return entries;
    }

    /// <summary>The entry's flow template and demo flow that do not exist in the catalogue folder, one problem each.</summary>
    public static IEnumerable<string> MissingTemplates(string directory, CatalogueEntry entry, string file) =>
        new[] { ("flow_template", entry.FlowTemplate), ("demo_flow", entry.DemoFlow) }
            .Where(template => !File.Exists(Path.Combine(directory, template.Item2)))
            .Select(template => $"{file}: {template.Item1}: '{template.Item2}' ({Path.Combine(directory, template.Item2)}) does not exist in the catalogue.");

    private static string Resolve(string directory)
    {
        if (Path.IsPathRooted(directory))
        {
            return directory;
        }

        var candidates = new[] { Path.GetFullPath(directory), Path.Combine(AppContext.BaseDirectory, directory) };
        return candidates.FirstOrDefault(System.IO.Directory.Exists) ?? candidates[0];
    }
}
