using System.Diagnostics;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// A PostgreSQL cluster of a test's own (initdb on loopback, as scripts/services.sh starts one), for fault
/// tests that stop and restart the database: never the shared cluster other tests use. Needs root (like
/// scripts/test.sh) and PostgreSQL 15 under /usr/lib/postgresql/15/bin.
/// </summary>
public sealed class ThrowawayPostgres : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";

    private readonly string _directory;

    private ThrowawayPostgres(string directory, int port)
    {
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=3;Command Timeout=10";

    public static async Task<ThrowawayPostgres> StartAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "cmp-adapter-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var postgres = new ThrowawayPostgres(directory, LoopbackPorts.Free());
        await RunAsync("chown", ["postgres", directory]);
        await postgres.AsPostgresAsync($"{Bin}/initdb -D {directory}/data -A trust -U postgres >/dev/null");
        await postgres.StartAgainAsync();
        return postgres;
    }

    /// <summary>Kills the server at once (no clean shutdown): every connection drops mid-statement.</summary>
    public Task StopAsync() => AsPostgresAsync($"{Bin}/pg_ctl -D {_directory}/data -m immediate -w stop >/dev/null");

    public Task StartAgainAsync() => AsPostgresAsync(
        $"{Bin}/pg_ctl -D {_directory}/data -l {_directory}/log -w -o \"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start >/dev/null");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        Directory.Delete(_directory, recursive: true);
    }

    private Task AsPostgresAsync(string command) => RunAsync("su", ["postgres", "-s", "/bin/sh", "-c", command]);

    private static async Task RunAsync(string file, string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed: {await error}");
        }
    }
}
