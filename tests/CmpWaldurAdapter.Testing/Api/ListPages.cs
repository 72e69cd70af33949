using System.Text.Json.Nodes;
using Xunit;

namespace CmpWaldurAdapter.Testing.Api;

/// <summary>Walks a list endpoint paged as OpenAI's are (limit, after → first_id, last_id, has_more), as a client would.</summary>
public static class ListPages
{
    /// <summary>
    /// Every page from the newest, following last_id while has_more says so (at most 10 pages), checking on each that
    /// first_id and last_id name its first and last items. Returns the ids in the order seen, and the pages.
    /// </summary>
    public static async Task<(List<string> Ids, List<JsonNode> Pages)> WalkAsync(HttpClient http, string path, int limit)
    {
        var walked = new List<string>();
        var pages = new List<JsonNode>();
        string? after = null;
        do
        {
            var page = JsonNode.Parse(await http.GetStringAsync($"{path}?limit={limit}" + (after is null ? string.Empty : "&after=" + after)))!;
            pages.Add(page);
            var ids = page["data"]!.AsArray().Select(item => item!["id"]!.GetValue<string>()).ToList();
            Assert.Equal("list", page["object"]!.GetValue<string>());
            Assert.Equal(ids[0], page["first_id"]!.GetValue<string>());
            Assert.Equal(ids[^1], page["last_id"]!.GetValue<string>());
            walked.AddRange(ids);
            after = page["has_more"]!.GetValue<bool>() ? page["last_id"]!.GetValue<string>() : null;
        }
        while (after is not null && pages.Count < 10);

        return (walked, pages);
    }
}
