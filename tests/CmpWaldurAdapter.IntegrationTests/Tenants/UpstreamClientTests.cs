using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Refit;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// The Refit clients against the fakes, beyond what provisioning uses (documents, parsing, retrieval, running
/// a flow); the test bed checks every request against the pinned specs.
/// </summary>
public sealed class UpstreamClientTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Ragflow_documents_are_uploaded_listed_parsed_retrieved_and_deleted_by_id()
    {
        var subscription = await _bed.SubscriptionAsync(await _bed.SubscribeAsync());
        var dataset = subscription.RagflowDatasetId!;
        var ragflow = _bed.Services.GetRequiredService<IRagflowApi>();

        var uploaded = await ragflow.UploadDocumentsAsync(dataset, [File("faq.txt", "Opening hours: 9-17."), File("faq.txt", "Returns: 30 days.")], CancellationToken.None);
        Assert.Equal(["faq.txt", "faq(1).txt"], uploaded.Data!.Select(d => d.Name));
        Assert.All(uploaded.Data!, d => Assert.Equal("UNSTART", d.Run));

        var ids = uploaded.Data!.Select(d => d.Id).ToList();
        await ragflow.ParseDocumentsAsync(dataset, new ParseRequest { Document_ids = ids }, CancellationToken.None);
        var again = await Assert.ThrowsAsync<ApiRequestException>(() => ragflow.ParseDocumentsAsync(dataset, new ParseRequest { Document_ids = ids }, CancellationToken.None));
        Assert.Equal((102, false), (RagflowException.Find(again)!.Code, RagflowException.Find(again)!.IsTransient));

        _bed.Ragflow.FinishParsing(dataset);
        var page = await ragflow.ListDocumentsAsync(dataset, 1, 100, CancellationToken.None);
        Assert.Equal(2, page.Data!.Total);
        Assert.All(page.Data.Docs!, d => Assert.Equal("DONE", d.Run));

        var found = await ragflow.RetrieveAsync(new RetrievalRequest { Question = "When are you open?", Dataset_ids = [dataset], Page_size = 5 }, CancellationToken.None);
        // Retrieval matches the question's words: only the paragraph about opening hours answers it.
        Assert.Equal(1, found.Data!.Total);
        var chunk = Assert.Single(found.Data.Chunks!);
        Assert.Equal((dataset, "Opening hours: 9-17."), (chunk.Dataset_id, chunk.Content));

        await ragflow.DeleteDocumentsAsync(dataset, new DeleteByIdsRequest { Ids = [ids[0]] }, CancellationToken.None);
        var gone = await Assert.ThrowsAsync<ApiRequestException>(() => ragflow.DeleteDocumentsAsync(dataset, new DeleteByIdsRequest { Ids = [ids[0]] }, CancellationToken.None));
        Assert.True(RagflowException.Find(gone)!.IsNotFound);
        Assert.Single((await ragflow.ListDocumentsAsync(dataset, 1, 100, CancellationToken.None)).Data!.Docs!);
    }

    [Fact]
    public async Task A_document_the_fake_holds_from_before_is_stored_as_an_upload_stores_it()
    {
        var dataset = (await _bed.SubscriptionAsync(await _bed.SubscribeAsync())).RagflowDatasetId!;
        var ragflow = _bed.Services.GetRequiredService<IRagflowApi>();

        var earlier = _bed.Ragflow.AddDocument(dataset, "faq.txt", "Opening hours: 9-17.", run: "UNSTART");
        var twin = _bed.Ragflow.AddDocument(dataset, "faq.txt", "Returns: 30 days.", run: "UNSTART");
        var uploaded = Assert.Single((await ragflow.UploadDocumentsAsync(dataset, [File("faq.txt", "Returns: 30 days.")], CancellationToken.None)).Data!).Id;

        // A taken name is renamed as an upload renames it, and the rest is stored the same way.
        var stored = _bed.Ragflow.Documents(dataset).ToDictionary(d => d["id"]!.GetValue<string>());
        Assert.Equal(("faq.txt", "faq(1).txt", "faq(2).txt"), (Name(stored[earlier]), Name(stored[twin]), Name(stored[uploaded])));
        Assert.Equal(Comparable(stored[uploaded]), Comparable(stored[twin]));

        // Parsed from the same text into the same chunks.
        await ragflow.ParseDocumentsAsync(dataset, new ParseRequest { Document_ids = [twin, uploaded] }, CancellationToken.None);
        _bed.Ragflow.FinishParsing(dataset);
        var found = await ragflow.RetrieveAsync(new RetrievalRequest { Question = "How many days for returns?", Dataset_ids = [dataset], Page_size = 5 }, CancellationToken.None);
        Assert.Equal(["faq(1).txt Returns: 30 days.", "faq(2).txt Returns: 30 days."], found.Data!.Chunks!.Select(c => $"{c.Document_keyword} {c.Content}").Order(StringComparer.Ordinal));

        static string Name(JsonObject document) => document["name"]!.GetValue<string>();

        // What differs between two documents of one upload route: their ids, names and times.
        static string Comparable(JsonObject document)
        {
            foreach (var key in new[] { "id", "name", "location", "create_time", "update_time" })
            {
                document.Remove(key);
            }

            return document.ToJsonString();
        }
    }

    [Fact]
    public async Task A_tenant_runs_its_own_flow_with_its_key_in_the_header()
    {
        var subscription = await _bed.SubscriptionAsync(await _bed.SubscribeAsync());
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        var langflow = _bed.Services.GetRequiredService<ILangflowApi>();
        var key = LangflowCredential.FromApiKey(_bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));

        var answer = await langflow.RunAsync(Guid.Parse(subscription.LangflowFlowId!), new SimplifiedAPIRequest
        {
            Input_value = "Where is my parcel?",
            Input_type = SimplifiedAPIRequestInput_type.Chat,
            Output_type = SimplifiedAPIRequestOutput_type.Chat,
            Session_id = $"{subscription.ResourceUuid}:conversation-1",
            Tweaks = new Tweaks { ["Prompt-cmp01"] = new Dictionary<string, object> { ["context"] = "Parcels ship in 2 days." } },
        }, key, CancellationToken.None);

        Assert.Equal("echo: Where is my parcel?", answer.Text());
        Assert.Equal($"{subscription.ResourceUuid}:conversation-1", answer.SessionId);
        Assert.Equal("api key ***", key.ToString());
        Assert.Equal(0, _bed.Langflow.QueryKeyUses);
    }

    private static StreamPart File(string name, string text) => new(new MemoryStream(Encoding.UTF8.GetBytes(text)), name, "text/plain");
}
