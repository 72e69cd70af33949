using System.Reflection;
using CmpWaldurAdapter.Langflow;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Ragflow;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Web;

namespace CmpWaldurAdapter.UnitTests.Hosting;

/// <summary>The configuration sections the adapter binds, found by the options classes' <c>SectionName</c>.</summary>
internal static class ConfigurationSections
{
    private static readonly Lazy<Dictionary<string, Type>> Sections = new(Find);

    /// <summary>Section name ("Chat", "Knowledge:Url") to the type bound from it.</summary>
    public static IReadOnlyDictionary<string, Type> All => Sections.Value;

    /// <summary>What the configuration binder sets: public settable properties, and get-only lists it fills.</summary>
    public static IEnumerable<PropertyInfo> BindableProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && !typeof(Delegate).IsAssignableFrom(p.PropertyType))
            .Where(p => p.SetMethod is { IsPublic: true } || ElementType(p.PropertyType) is not null);

    public static Type? ElementType(Type type) =>
        type == typeof(string) ? null
        : type.IsArray ? type.GetElementType()
        : type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) ? type.GetGenericArguments()[0]
        : null;

    private static Dictionary<string, Type> Find()
    {
        Assembly[] assemblies = [typeof(WebOptions).Assembly, typeof(WaldurOptions).Assembly, typeof(LangflowOptions).Assembly, typeof(RagflowOptions).Assembly];
        var sections = assemblies.SelectMany(a => a.GetTypes())
            .Select(t => (Type: t, Field: t.GetField("SectionName", BindingFlags.Public | BindingFlags.Static)))
            .Where(p => p.Field is { IsLiteral: true } && p.Field.FieldType == typeof(string))
            .ToDictionary(p => (string)p.Field!.GetRawConstantValue()!, p => p.Type, StringComparer.Ordinal);
        sections["Offerings"] = typeof(List<OfferingBinding>); // bound as a list, so it has no options class of its own
        return sections;
    }
}
