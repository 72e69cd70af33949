using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using CmpWaldurAdapter.IntegrationTests.Chat;
using Microsoft.EntityFrameworkCore;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Images;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>The chat test bed, optionally with the support agent's offering enabling image generation and voice (10 and 2 credits).</summary>
public static class MediaTestBed
{
    /// <param name="pricing">Rewrites the offering's catalogue entry after media are enabled (to change its prices).</param>
    public static async Task<(ChatTestBed Bed, string Catalogue)> StartWithMediaAsync(Action<Dictionary<string, string?>>? settings = null, Func<string, string>? pricing = null)
    {
        var catalogue = await WriteMediaCatalogueAsync(pricing);
        var bed = await ChatTestBed.StartAsync(values =>
        {
            values["Catalogue:Directory"] = catalogue;
            settings?.Invoke(values);
        });
        return (bed, catalogue);
    }

    /// <summary>A copy of the catalogue whose support agent also generates images and speaks; the directory, for <c>Catalogue:Directory</c>.</summary>
    public static async Task<string> WriteMediaCatalogueAsync(Func<string, string>? pricing = null)
    {
        var catalogue = Path.Combine(Path.GetTempPath(), "cmp-media-catalogue-" + Guid.NewGuid().ToString("N")[..12]);
        CopyDirectory(Path.Combine(AppContext.BaseDirectory, "catalogue"), catalogue);
        var file = Path.Combine(catalogue, "customer-support-agent.yaml");
        var yaml = await File.ReadAllTextAsync(file);
        yaml = yaml
            .Replace("capabilities: [chat, knowledge_base, widget]", "capabilities: [chat, knowledge_base, widget, image_generation, voice]", StringComparison.Ordinal)
            .Replace("  rag_document: 5\n", "  rag_document: 5\n  image_generation: 10\n  voice_interaction: 2\n", StringComparison.Ordinal)
            .Replace("components:\n", "components:\n  - type: image_credits\n    name: Images\n    measured_unit: credits\n  - type: voice_credits\n    name: Voice interactions\n    measured_unit: credits\n", StringComparison.Ordinal)
            .Replace("    rag_credits: \"0.01\"", "    rag_credits: \"0.01\"\n    image_credits: \"0.01\"\n    voice_credits: \"0.01\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(file, pricing?.Invoke(yaml) ?? yaml);
        return catalogue;
    }

    public static OpenAIClient OpenAiClient(this ChatTestBed bed, string key) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(bed.Server.Url, "v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = TimeSpan.FromSeconds(30),
        });

    public static ImageClient Images(this ChatTestBed bed, string key) => bed.OpenAiClient(key).GetImageClient(ChatTestBed.Model);

    public static AudioClient Audio(this ChatTestBed bed, string key) => bed.OpenAiClient(key).GetAudioClient(ChatTestBed.Model);

    /// <summary>The Waldur component each charge of the organization is reported under.</summary>
    public static Task<List<string>> ChargedComponentsAsync(this ChatTestBed bed, Guid customer) => bed.Tenants.QueryAsync(async db =>
        (await db.LedgerEntries.AsNoTracking().Where(e => e.CustomerId == customer && e.Kind == CmpWaldurAdapter.Core.Credits.LedgerEntryKind.Charge).ToListAsync())
            .Select(e => CmpWaldurAdapter.Core.Catalogue.ActionClasses.Component(e.ActionClass!.Value)).ToList());

    /// <summary>A PCM WAV (16 kHz mono 16-bit) whose header declares <paramref name="seconds"/> of audio, carrying <paramref name="bytes"/> bytes of it.</summary>
    public static byte[] Wav(double seconds, int bytes = 320)
    {
        const int byteRate = 16000 * 2;
        var declared = (uint)(seconds * byteRate);
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream, Encoding.ASCII);
        writer.Write("RIFF"u8);
        writer.Write(36 + declared);
        writer.Write("WAVEfmt "u8);
        writer.Write(16);
        writer.Write((short)1);
        writer.Write((short)1);
        writer.Write(16000);
        writer.Write(byteRate);
        writer.Write((short)2);
        writer.Write((short)16);
        writer.Write("data"u8);
        writer.Write(declared);
        writer.Write(new byte[bytes]);
        writer.Flush();
        return stream.ToArray();
    }

    internal static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var directory in Directory.GetDirectories(from))
        {
            CopyDirectory(directory, Path.Combine(to, Path.GetFileName(directory)));
        }
    }
}
