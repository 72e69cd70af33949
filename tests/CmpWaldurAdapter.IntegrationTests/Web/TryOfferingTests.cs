using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The try page and its messages are for the offerings this adapter serves. The catalogue can hold more (one not yet
/// bound, one another adapter serves): their demo flows are not run from here, not by a direct POST either.
/// </summary>
public sealed class TryOfferingTests
{
    [Fact]
    public async Task A_catalogued_offering_this_adapter_does_not_serve_has_neither_a_try_page_nor_demo_messages()
    {
        await using var bed = await BuyerWebTestBed.CreateAsync();
        var unbound = Array.IndexOf(BuyerWebTestBed.Slugs, "topic-assistant");
        Assert.Equal(BuyerWebTestBed.Slugs.Length - 1, unbound); // the last binding: the others keep their places
        foreach (var setting in bed.Settings.Keys.Where(k => k.StartsWith($"Offerings:{unbound}:", StringComparison.Ordinal)).ToList())
        {
            bed.Settings.Remove(setting);
        }

        await bed.StartAsync();
        using var visitor = bed.Server.CreateClient();

        var page = await visitor.GetAsync("/try/topic-assistant");
        var message = await visitor.PostAsJsonAsync("/try/topic-assistant/messages", new { message = "hi" });

        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, message.StatusCode);
        Assert.Equal("offering_not_found", JsonNode.Parse(await message.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Empty(bed.Agent.DemoSessions);
        Assert.Equal(0, await bed.QueryAsync(db => db.Allowances.CountAsync()));

        // A served offering's demo answers on the same adapter.
        Assert.Equal(HttpStatusCode.OK, (await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hi" })).StatusCode);
        Assert.Single(bed.Agent.DemoSessions);
    }
}
