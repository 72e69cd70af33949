using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Testing.Contracts;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.UnitTests.Ragflow;

/// <summary>
/// The example responses of the pinned RAGFlow HTTP reference, fed through the DTOs generated from
/// <c>openapi/ragflow.yaml</c> and checked against its schemas. The examples are copied verbatim from the
/// Markdown, including its slips (trailing commas, a stray full stop after a block), which are tolerated here
/// and only here.
/// </summary>
public sealed partial class RagflowReferenceExampleTests
{
    private const string Reference = "openapi/upstream/ragflow/http_api_reference.md";

    private static readonly JsonSerializerOptions Lenient = new(RagflowServiceCollectionExtensions.RagflowJson) { AllowTrailingCommas = true };

    private static readonly Lazy<string> Markdown = new(() => File.ReadAllText(UpstreamSpecs.PathOf(Reference)));

    public static TheoryData<string, string> Sections => new()
    {
        // section heading, response schema
        { "Create dataset", "DatasetEnvelope" },
        { "Delete datasets", "DeleteEnvelope" },
        { "List datasets", "DatasetListEnvelope" },
        { "Upload documents", "DocumentListEnvelope" },
        { "List documents", "DocumentPageEnvelope" },
        { "Delete documents", "DeleteEnvelope" },
        { "Parse documents", "Envelope" },
        { "Stop parsing documents", "Envelope" },
        { "Retrieve chunks", "RetrievalEnvelope" },
        { "Check system health", "HealthStatus" },
    };

    [Theory]
    [MemberData(nameof(Sections))]
    public void Every_example_response_fits_the_spec_schema(string section, string schema)
    {
        var examples = Examples(section);

        Assert.NotEmpty(examples);
        foreach (var example in examples)
        {
            var errors = UpstreamSpecs.Ragflow.ValidateInstance(JsonNode.Parse(example, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }), $"#/components/schemas/{schema}");
            Assert.True(errors.Count == 0, $"{section}: {string.Join("; ", errors)}\n{example}");
        }
    }

    [Fact]
    public void Create_dataset_examples_read_as_a_dataset_or_a_typed_error()
    {
        var (success, failure) = (Examples("Create dataset")[0], Examples("Create dataset")[1]);

        var created = Read<DatasetEnvelope>(success);
        Assert.Equal(0, created.Code);
        Assert.Equal(("3b4de7d4241d11f0a6a79f24fc270c7f", "RAGFlow example", "me"), (created.Data!.Id, created.Data.Name, created.Data.Permission));
        Assert.Equal(1745836841611, created.Data.Create_time);
        Assert.Equal(0.3, created.Data.Vector_similarity_weight);
        Assert.False(RagflowEnvelopeHandler.TryReadError(Bytes(success), out _, out _));

        Assert.True(RagflowEnvelopeHandler.TryReadError(Bytes(failure), out var code, out var message));
        Assert.Equal(101, code);
        Assert.StartsWith("Field: <name>", message);
        Assert.False(new RagflowException(code, message, System.Net.HttpStatusCode.OK, "/api/v1/datasets").IsTransient);
    }

    [Fact]
    public void List_examples_read_as_datasets_and_an_unknown_dataset_as_not_found()
    {
        var examples = Examples("List datasets");

        var list = Read<DatasetListEnvelope>(examples[0]);
        Assert.Equal(("6e211ee0723611efa10a0242ac120007", "mysql", 1), (list.Data![0].Id, list.Data[0].Name, list.Total_datasets));
        var withStatus = Read<DatasetListEnvelope>(examples[1]);
        Assert.Equal("Test Dataset", withStatus.Data![0].Name);
        Assert.True(RagflowEnvelopeHandler.TryReadError(Bytes(examples[2]), out var code, out var message));
        Assert.True(new RagflowException(code, message, System.Net.HttpStatusCode.OK, "/api/v1/datasets").IsNotFound);
    }

    [Fact]
    public void Document_examples_read_with_their_parsing_state()
    {
        var uploaded = Read<DocumentListEnvelope>(Examples("Upload documents")[0]);
        Assert.Equal(("1.txt", "UNSTART", 17966), (uploaded.Data![0].Name, uploaded.Data[0].Run, uploaded.Data[0].Size));

        var page = Read<DocumentPageEnvelope>(Examples("List documents")[0]);
        var document = Assert.Single(page.Data!.Docs!);
        Assert.Equal(("Test_2.txt", "UNSTART", 0.0), (document.Name, document.Run, document.Progress));
        // The reference names the dataset "knowledgebase_id"; the server sends "dataset_id". Both read.
        Assert.Equal("7898da028a0511efbf750242ac120005", document.Knowledgebase_id);

        var notOwned = Examples("List documents")[1];
        Assert.True(RagflowEnvelopeHandler.TryReadError(Bytes(notOwned), out var code, out var message));
        Assert.True(RagflowErrors.IsNotFound(code, message));
    }

    [Fact]
    public void Retrieval_and_health_examples_read()
    {
        var retrieval = Read<RetrievalEnvelope>(Examples("Retrieve chunks")[0]);
        var chunk = Assert.Single(retrieval.Data!.Chunks!);
        Assert.Equal(("ragflow content", "c7ee74067a2c11efb21c0242ac120006"), (chunk.Content, chunk.Dataset_id));
        Assert.Equal(0.9669436601210759, chunk.Similarity);

        var health = Examples("Check system health");
        Assert.Equal("ok", Read<HealthStatus>(health[0]).Status);
        Assert.Equal(("nok", "nok"), (Read<HealthStatus>(health[1]).Status, Read<HealthStatus>(health[1]).Redis));
    }

    [Fact]
    public void The_parse_and_delete_examples_are_envelopes_without_data()
    {
        Assert.Equal(0, Read<Envelope>(Examples("Parse documents")[0]).Code);
        Assert.Equal(0, Read<DeleteEnvelope>(Examples("Delete documents")[0]).Code);
        Assert.True(RagflowEnvelopeHandler.TryReadError(Bytes(Examples("Delete datasets")[1]), out var code, out var message));
        Assert.True(RagflowErrors.IsNotFound(code, message), "≤ v0.24's code 108 'lacks permission' also means gone");
    }

    /// <summary>The JSON bodies in a section's "Response" part, as written.</summary>
    internal static List<string> Examples(string section)
    {
        var text = Markdown.Value;
        var start = text.IndexOf($"\n### {section}\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no section '{section}' in the reference");
        var end = text.IndexOf("\n### ", start + 5, StringComparison.Ordinal);
        var body = text[start..(end < 0 ? text.Length : end)];
        var responses = body[body.LastIndexOf("\n#### ", StringComparison.Ordinal)..]; // "#### Response(s)" comes last
        return CodeBlock().Matches(responses)
            .Select(m => m.Groups["code"].Value)
            .Select(code => code[code.IndexOf('{', StringComparison.Ordinal)..(code.LastIndexOf('}') + 1)])
            .ToList();
    }

    private static T Read<T>(string json) => JsonSerializer.Deserialize<T>(json, Lenient)!;

    private static byte[] Bytes(string json) => System.Text.Encoding.UTF8.GetBytes(json);

    [GeneratedRegex("```(?:json|http)\\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();
}
