using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>Loading specs: YAML 1.2 core-schema scalars, quoting, anchors, gzip, caching.</summary>
public sealed class OpenApiDocumentTests
{
    [Fact]
    public void Plain_scalars_follow_the_yaml_1_2_core_schema_and_quoted_ones_stay_strings()
    {
        var node = YamlJsonConverter.Parse("""
            int: 42
            negative: -7
            hex: 0x1F
            octal: 0o17
            float: 240.0
            exp: 1e3
            yes_is_text_in_1_2: yes
            on: on
            bool: true
            capital: False
            nothing: ~
            empty:
            null_word: null
            quoted_int: '200'
            quoted_bool: "true"
            quoted_null: 'null'
            date_like: 2024-01-01
            version: 8.0.5
            200:
              description: plain key
            literal: |
              1
            tagged: !!str 5
            """)!.AsObject();

        Assert.Equal(JsonValueKind.Number, node["int"]!.GetValueKind());
        Assert.Equal(42, node["int"]!.GetValue<long>());
        Assert.Equal(-7, node["negative"]!.GetValue<long>());
        Assert.Equal(31, node["hex"]!.GetValue<long>());
        Assert.Equal(15, node["octal"]!.GetValue<long>());
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("240"), node["float"]));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("1000"), node["exp"]));
        Assert.Equal("yes", node["yes_is_text_in_1_2"]!.GetValue<string>());
        Assert.Equal("on", node["on"]!.GetValue<string>());
        Assert.True(node["bool"]!.GetValue<bool>());
        Assert.False(node["capital"]!.GetValue<bool>());
        Assert.Null(node["nothing"]);
        Assert.True(node.ContainsKey("nothing"));
        Assert.Null(node["empty"]);
        Assert.Null(node["null_word"]);
        Assert.Equal("200", node["quoted_int"]!.GetValue<string>());
        Assert.Equal("true", node["quoted_bool"]!.GetValue<string>());
        Assert.Equal("null", node["quoted_null"]!.GetValue<string>());
        Assert.Equal("2024-01-01", node["date_like"]!.GetValue<string>());
        Assert.Equal("8.0.5", node["version"]!.GetValue<string>());
        Assert.Equal("plain key", node["200"]!["description"]!.GetValue<string>());
        Assert.Equal("1\n", node["literal"]!.GetValue<string>());
        Assert.Equal("5", node["tagged"]!.GetValue<string>());
    }

    [Fact]
    public void Anchors_aliases_and_merge_keys_are_expanded()
    {
        var node = YamlJsonConverter.Parse("""
            base: &base { type: string, maxLength: 3 }
            copy: *base
            merged:
              <<: *base
              maxLength: 9
            """)!;

        Assert.True(JsonNode.DeepEquals(node["base"], node["copy"]));
        Assert.Equal("string", node["merged"]!["type"]!.GetValue<string>());
        Assert.Equal(9, node["merged"]!["maxLength"]!.GetValue<long>());
    }

    [Fact]
    public void Duplicate_keys_are_rejected() =>
        Assert.ThrowsAny<Exception>(() => YamlJsonConverter.Parse("a: 1\na: 2\n"));

    [Fact]
    public void Gzipped_json_and_yaml_files_load_and_are_cached_per_path()
    {
        var folder = Directory.CreateTempSubdirectory("openapi-doc-");
        try
        {
            var yamlGz = Path.Combine(folder.FullName, "spec.yaml.gz");
            using (var gzip = new GZipStream(File.Create(yamlGz), CompressionLevel.Fastest))
            {
                gzip.Write(Encoding.UTF8.GetBytes("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"));
            }

            var json = Path.Combine(folder.FullName, "spec.json");
            File.WriteAllText(json, """{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{}}""");

            var fromYaml = OpenApiDocument.Load(yamlGz);
            var fromJson = OpenApiDocument.Load(json);

            Assert.Equal("3.0.3", fromYaml.OpenApiVersion);
            Assert.Equal("1", fromYaml.Root["info"]!["version"]!.GetValue<string>());
            Assert.True(fromJson.IsOpenApi31);
            Assert.Same(fromYaml, OpenApiDocument.Load(Path.Combine(folder.FullName, ".", "spec.yaml.gz")));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void Waldur_upstream_loads_with_response_codes_as_string_keys()
    {
        var upstream = OpenApiDocument.Load(UpstreamSpecs.PathOf(UpstreamSpecs.WaldurUpstreamPath));

        Assert.Equal("3.0.3", upstream.OpenApiVersion);
        Assert.Same(upstream, OpenApiDocument.Load(UpstreamSpecs.PathOf(UpstreamSpecs.WaldurUpstreamPath)));
        Assert.Equal(1410, upstream.Root["paths"]!.AsObject().Count);
        Assert.Equal(1806, upstream.Root["components"]!["schemas"]!.AsObject().Count);
        Assert.NotNull(upstream.Root["paths"]!["/api/users/me/"]!["get"]!["responses"]!["200"]);
    }

    [Fact]
    public void Local_refs_resolve_as_json_pointers()
    {
        var document = OpenApiDocument.Parse("""{"openapi":"3.1.0","components":{"schemas":{"a/b":{"x":[1,2]}}}}""");

        Assert.True(document.TryResolve("#/components/schemas/a~1b/x/1", out var node));
        Assert.Equal(2, node!.GetValue<int>());
        Assert.False(document.TryResolve("#/components/schemas/missing", out _));
        Assert.False(document.TryResolve("other.yaml#/x", out _));
    }

    [Fact]
    public void Repository_root_holds_the_solution() =>
        Assert.True(File.Exists(Path.Combine(UpstreamSpecs.RepositoryRoot, "CmpWaldurAdapter.sln")));

    [Fact]
    public void Extension_points_fail_clearly_until_their_files_exist()
    {
        // Langflow's trimmed file and the RAGFlow spec arrive later; until then the accessors say what is missing.
        if (!File.Exists(UpstreamSpecs.PathOf(UpstreamSpecs.LangflowPath)))
        {
            Assert.Contains("langflow.json", Assert.Throws<FileNotFoundException>(() => UpstreamSpecs.Langflow).Message);
        }
        else
        {
            Assert.NotNull(UpstreamSpecs.Langflow.Document.Root["paths"]);
        }

        Assert.Equal("3.1.0", UpstreamSpecs.LangflowUpstream.Document.OpenApiVersion);
    }
}
