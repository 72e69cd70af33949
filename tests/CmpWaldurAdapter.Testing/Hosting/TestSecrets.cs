using System.Collections.Concurrent;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// Every key, token and password the tests create or configure. A test host's captured logs are
/// scanned for all of them when the host is disposed, so any test that makes the adapter handle a
/// secret also proves the secret never reached a log line.
/// </summary>
public static class TestSecrets
{
    /// <summary>Shorter strings could occur in logs by chance (ids, words); real secrets here are longer.</summary>
    public const int MinimumLength = 12;

    private static readonly ConcurrentDictionary<string, string> Secrets = new(StringComparer.Ordinal);

    static TestSecrets()
    {
        Register(Fakes.WaldurFake.Token, "Waldur token");
        Register(Fakes.LangflowFake.SuperuserPassword, "Langflow superuser password");
        Register(Fakes.RagflowFake.ApiKey, "RAGFlow API key");
        Register(TestDatabase.KeyEncryptionKey, "Data Protection key-encryption key");
    }

    public static IReadOnlyCollection<string> All => (IReadOnlyCollection<string>)Secrets.Keys;

    /// <summary>Remembers <paramref name="secret"/> (what it is, for the failure message) and returns it.</summary>
    public static string Register(string secret, string what)
    {
        if (secret.Length >= MinimumLength)
        {
            Secrets.TryAdd(secret, what);
        }

        return secret;
    }

    /// <summary>The registered secrets that occur in any of <paramref name="lines"/>, with the first line each occurs in.</summary>
    public static IReadOnlyList<string> FoundIn(IEnumerable<string> lines)
    {
        var all = lines.ToList();
        var found = new List<string>();
        foreach (var (secret, what) in Secrets)
        {
            if (all.FirstOrDefault(line => line.Contains(secret, StringComparison.Ordinal)) is { } line)
            {
                found.Add($"{what} ({secret[..4]}…) in: {(line.Length > 300 ? line[..300] + "…" : line)}");
            }
        }

        return found;
    }

    /// <summary>Fails when a registered secret occurs in the captured logs.</summary>
    public static void AssertNotLogged(CapturedLogs logs)
    {
        var found = FoundIn(logs.Lines);
        if (found.Count > 0)
        {
            throw new SecretLoggedException("Secrets were written to the logs:" + Environment.NewLine + string.Join(Environment.NewLine, found));
        }
    }
}

public sealed class SecretLoggedException(string message) : Exception(message);
