namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// A catalogue folder with one offering that sells every action class (chat 2, documents 5, images 10,
/// voice 2, price-book version 3), with placeholder flow files, deleted with the test.
/// </summary>
public sealed class TestCatalogue : IDisposable
{
    public const string Slug = "studio-agent";

    public const int PriceBookVersion = 3;

    private const string Entry = """
        slug: studio-agent
        name: Studio Agent
        category: Agents
        description: Chats, reads documents, draws and talks.
        pricing:
          version: 3
          chat_message: 2
          rag_document: 5
          image_generation: 10
          voice_interaction: 2
        capabilities: [chat, knowledge_base, image_generation, voice]
        flow_template: flows/studio-agent.json
        demo_flow: flows/studio-agent.demo.json
        options:
          - key: agent_name
            type: string
            label: Agent name
        components:
          - type: chat_credits
            name: Chat messages
          - type: rag_credits
            name: Knowledge-base documents
          - type: image_credits
            name: Images
          - type: voice_credits
            name: Voice interactions
        plan:
          name: Pay as you go
          prices:
            chat_credits: "0.01"
            rag_credits: "0.01"
            image_credits: "0.01"
            voice_credits: "0.01"
        """;

    public TestCatalogue()
    {
        Directory = Path.Combine(Path.GetTempPath(), "cmp-adapter-catalogue-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "flows"));
        File.WriteAllText(Path.Combine(Directory, Slug + ".yaml"), Entry);
        File.WriteAllText(Path.Combine(Directory, "flows", Slug + ".json"), "{}");
        File.WriteAllText(Path.Combine(Directory, "flows", Slug + ".demo.json"), "{}");
    }

    public string Directory { get; }

    public static readonly string[] Components = ["chat_credits", "image_credits", "rag_credits", "voice_credits"];

    public void Dispose()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
