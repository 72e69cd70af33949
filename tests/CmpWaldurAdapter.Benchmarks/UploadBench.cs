using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// Knowledge-base uploads through the adapter's public endpoint (<c>POST /v1/knowledge/documents</c>, as API clients
/// and the console send them) to the RAGFlow emulator, with <c>cmp-adapter serve</c> in its own process: the adapter
/// buffers each upload in a temporary file and streams it on, so its memory must not grow with the file size or the
/// number of uploads in flight. Rounds of N concurrent large files, then a series of small ones from several clients;
/// the adapter's peak resident set (VmHWM) is read after warm-up and after each phase.
/// </summary>
internal static class UploadBench
{
    private const long MB = 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i]] = args[i + 1];
        }

        string Get(string name, string fallback) => values.TryGetValue(name, out var value) ? value : fallback;
        var uploads = int.Parse(Get("--uploads", "8"), CultureInfo.InvariantCulture);
        var askedMb = int.Parse(Get("--upload-mb", "64"), CultureInfo.InvariantCulture);
        var rounds = int.Parse(Get("--rounds", "2"), CultureInfo.InvariantCulture);
        var small = int.Parse(Get("--small", "400"), CultureInfo.InvariantCulture);
        var smallKb = int.Parse(Get("--small-kb", "100"), CultureInfo.InvariantCulture);
        var workers = int.Parse(Get("--workers", "8"), CultureInfo.InvariantCulture);
        var subscriptions = int.Parse(Get("--subscriptions", "4"), CultureInfo.InvariantCulture);
        var record = values.GetValueOrDefault("--record");

        // The adapter runs with its default per-file limit unless --limit-mb sets another (as an operator may): the
        // large file is the size asked for, or the largest the adapter accepts.
        var limitMb = values.TryGetValue("--limit-mb", out var raised) ? int.Parse(raised, CultureInfo.InvariantCulture) : (int?)null;
        var limit = limitMb * MB ?? new KnowledgeOptions().MaxFileBytes;
        var limitName = limitMb is null ? "default per-file limit (Knowledge:MaxFileBytes)" : "per-file limit, set by the bench (Knowledge:MaxFileBytes)";
        var size = Math.Min(askedMb * MB, limit);
        var sizeNote = size < askedMb * MB
            ? $"{askedMb} MB asked; the adapter's {limitName} is {limit / MB} MB, so each large file is {size / MB} MB"
            : $"{size / MB} MB each; the adapter's {limitName} is {limit / MB} MB";

        await using var bed = await EmulatedChatBed.StartAsync(DatabaseProvider.Postgres, settings =>
        {
            if (limitMb is not null)
            {
                settings["Knowledge:MaxFileBytes"] = limit.ToString(CultureInfo.InvariantCulture);
            }
        });
        var keys = new List<string>();
        for (var i = 0; i < subscriptions; i++)
        {
            keys.Add((await bed.SubscribeAsync(credits: 1_000_000_000)).Key);
        }

        // One large file's bytes, shared by every large upload (the bench's own memory does not count).
        var large = Document(size);
        var smallFile = Document(smallKb * 1024L);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = bed.Url, Timeout = TimeSpan.FromMinutes(10) };
        Console.WriteLine($"uploads: {rounds} rounds of {uploads} concurrent files ({sizeNote}), then {small} files of {smallKb} KB from {workers} clients; {subscriptions} subscriptions");

        // Warm-up with small files only: the upload path is compiled and pooled, but nothing large has gone through.
        var errors = new List<string>();
        await SeriesAsync(http, keys, smallFile, workers * 4, workers, errors);
        await Task.Delay(TimeSpan.FromSeconds(1));
        var before = bed.AdapterPeakResidentBytes;

        var rows = new List<string>();
        var phasePeaks = new List<long>();
        for (var round = 1; round <= rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            var results = await Task.WhenAll(Enumerable.Range(0, uploads).Select(i =>
                UploadAsync(http, keys[i % keys.Count], $"large-{round}-{i}.txt", large, errors)));
            clock.Stop();
            var done = results.Count(r => r.Ok);
            var peak = bed.AdapterPeakResidentBytes;
            phasePeaks.Add(peak);
            var sizesOk = results.Where(r => r.Ok).All(r => r.SizeBytes == size);
            if (!sizesOk)
            {
                errors.Add($"round {round}: a large document was recorded with another size than {size} bytes (not all of it reached RAGFlow)");
            }

            var (p50, p99) = Stats.Percentiles([.. results.Select(r => r.Ticks)]);
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| round {round}: {uploads} concurrent large files | {done}/{uploads} | {size / (double)MB:F0} MB | {clock.Elapsed.TotalSeconds:F1} | {done * size / (double)MB / clock.Elapsed.TotalSeconds:F0} | {p50:F0} | {p99:F0} | {peak / MB} |"));
        }

        var series = Stopwatch.StartNew();
        var smallResults = await SeriesAsync(http, keys, smallFile, small, workers, errors);
        series.Stop();
        var after = bed.AdapterPeakResidentBytes;
        var smallDone = smallResults.Count(r => r.Ok);
        var (sp50, sp99) = Stats.Percentiles([.. smallResults.Select(r => r.Ticks)]);
        rows.Add(string.Create(CultureInfo.InvariantCulture,
            $"| {small} small files, {workers} clients back to back ({smallDone / series.Elapsed.TotalSeconds:F0} uploads/s) | {smallDone}/{small} | {smallKb} KB | {series.Elapsed.TotalSeconds:F1} | {smallDone * smallKb / 1024.0 / series.Elapsed.TotalSeconds:F1} | {sp50:F0} | {sp99:F0} | {after / MB} |"));

        var growth = after - before;
        var inFlight = uploads * size;
        var targets = new List<string>
        {
            Target("every upload done", errors.Count == 0),
            Target("adapter peak memory ≤ 250 MB", after <= 250 * MB),
            Target($"growth from the uploads ≤ 64 MB ({uploads} × {size / MB} MB = {inFlight / MB} MB in flight)", growth <= 64 * MB),
        };
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        Console.WriteLine($"adapter peak resident set: {before / MB} MB after warm-up, {after / MB} MB after the uploads (growth {growth / MB} MB); " + string.Join("; ", targets));
        if (record is not null)
        {
            await BenchRecord.AppendAsync(record, "knowledge uploads",
            [
                $"Load: `POST /v1/knowledge/documents` (multipart, one text file per request, secret key) over {subscriptions} subscriptions, database Postgres; .NET {Environment.Version}. {rounds} rounds of {uploads} concurrent large files ({sizeNote}), then {small} files of {smallKb} KB from {workers} clients sending back to back. Warm-up: {workers * 4} small files.",
                "`cmp-adapter serve` runs as its own process; the load generator and the product's emulators run in the benchmark's process. The RAGFlow emulator reads every byte sent and keeps the first 1 MB of each file (its recorded size is the size sent, checked against the file's).",
                $"Adapter memory: peak resident set (VmHWM) of the `cmp-adapter serve` process after start, provisioning and warm-up: {before / MB} MB; after the uploads: {after / MB} MB; growth {growth / MB} MB, with {inFlight / MB} MB in flight at once. Peak after each phase in the last column.",
            ],
            ["| Phase | Done | Size each | Seconds | MB/s through the adapter | p50 ms | p99 ms | Adapter peak MB |", "|---|---:|---:|---:|---:|---:|---:|---:|", .. rows],
            targets, [.. errors.Distinct().Take(5)]);
        }

        foreach (var error in errors.Distinct().Take(10))
        {
            Console.Error.WriteLine("FAILED: " + error);
        }

        return errors.Count == 0 && after <= 250 * MB && growth <= 64 * MB ? 0 : 1;
    }

    private static string Target(string name, bool met) => $"{name}: {(met ? "met" : "NOT met")}";

    private sealed record Upload(long Ticks, bool Ok, long SizeBytes);

    /// <summary>Text in paragraphs, as the emulator chunks it: a plain .txt is an accepted type and needs no converter.</summary>
    private static byte[] Document(long length)
    {
        var paragraph = "Parcels are delivered within three working days; a refund is paid to the original card within five days of the return arriving.\n\n"u8;
        var bytes = new byte[length];
        for (var at = 0L; at < length; at += paragraph.Length)
        {
            paragraph[..(int)Math.Min(paragraph.Length, length - at)].CopyTo(bytes.AsSpan((int)at));
        }

        return bytes;
    }

    /// <summary>N files from a few clients, each sending the next as soon as the last is answered (closed loop).</summary>
    private static async Task<List<Upload>> SeriesAsync(HttpClient http, List<string> keys, byte[] file, int count, int workers, List<string> errors)
    {
        var next = -1;
        var results = new List<Upload>[workers];
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var mine = results[w] = [];
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                mine.Add(await UploadAsync(http, keys[i % keys.Count], $"small-{Guid.NewGuid():N}.txt", file, errors));
            }
        })));
        return [.. results.SelectMany(r => r)];
    }

    /// <summary>One upload as an API client sends it: a multipart form with one <c>file</c> part, answered 201 with the document.</summary>
    private static async Task<Upload> UploadAsync(HttpClient http, string key, string name, byte[] file, List<string> errors)
    {
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(file);
        part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(part, "file", name);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/knowledge/documents") { Content = form };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            var ticks = Stopwatch.GetTimestamp() - started;
            if (response.StatusCode != HttpStatusCode.Created)
            {
                lock (errors)
                {
                    errors.Add($"{name}: {(int)response.StatusCode} {body[..Math.Min(body.Length, 300)]}");
                }

                return new Upload(ticks, false, 0);
            }

            var sizeBytes = JsonNode.Parse(body)?["data"]?[0]?["size_bytes"]?.GetValue<long>() ?? 0;
            return new Upload(ticks, true, sizeBytes);
        }
        catch (HttpRequestException exception)
        {
            lock (errors)
            {
                errors.Add($"{name}: {exception.Message}");
            }

            return new Upload(Stopwatch.GetTimestamp() - started, false, 0);
        }
    }
}
