using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// Uploads of several MB sent as they are written (chunked, no declared length), to a RAGFlow that reads an upload as
/// it arrives (<see cref="RagflowUploadRelay"/>). The whole request is read (large files into temporary files) and
/// checked before any file goes on to RAGFlow, streamed from there; a client that holds back the rest of its file shows
/// what the adapter decides before the body is complete without measuring memory or time.
/// </summary>
public sealed class KnowledgeLargeUploadTests : IAsyncLifetime
{
    private const int Megabyte = 1024 * 1024;

    /// <summary>How long a held-back client waits: far past anything a working adapter needs, short of hanging the run.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private KnowledgeTestBed _bed = null!;
    private RagflowUploadRelay _relay = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Sqlite);
        _relay = await RagflowUploadRelay.StartAsync(_bed.Ragflow.Url);
        _bed.Settings["Ragflow:BaseUrl"] = _relay.Url.ToString();
        _bed.Settings["Knowledge:MaxFileBytes"] = (8 * Megabyte).ToString();
        await _bed.StartAsync(credits: 20);
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        await _relay.DisposeAsync();
    }

    [Fact]
    public async Task A_large_upload_sent_as_it_is_written_reaches_ragflow_byte_for_byte_and_is_charged_once_parsed()
    {
        var document = HeldBackUpload.NumberedLines(6 * Megabyte);
        var upload = new HeldBackUpload("handbook.txt", document, firstPart: Megabyte, resume: Task.CompletedTask);
        var available = await _bed.AvailableAsync();

        var (status, body) = await _bed.SendAsync(HttpMethod.Post, "/v1/knowledge/documents", upload, _bed.Key);

        await AssertAddedWholeAsync(document, status, body, available);
    }

    [Fact]
    public async Task An_upload_past_the_request_limit_is_413_while_it_is_still_being_sent_and_ragflow_gets_no_document()
    {
        // The request limit is the most files at the largest size plus 1 MB for the form: 2 MB here.
        _bed.Settings["Knowledge:MaxFileBytes"] = Megabyte.ToString();
        _bed.Settings["Knowledge:MaxFilesPerUpload"] = "1";
        await _bed.RestartAsync();
        var answered = new TaskCompletionSource();
        var upload = new HeldBackUpload("archive.txt", HeldBackUpload.NumberedLines(6 * Megabyte), firstPart: 3 * Megabyte, answered.Task);
        var available = await _bed.AvailableAsync();

        await using var raw = await RawUpload.StartAsync(_bed.Server.Url, "/v1/knowledge/documents", _bed.Key, upload);
        (HttpStatusCode Status, JsonObject Body) answer;
        long writtenWhenAnswered;
        try
        {
            using var patience = new CancellationTokenSource(Patience);
            var (status, text) = await raw.ReadAnswerAsync(patience.Token);
            answer = (status, JsonNode.Parse(text)!.AsObject());
            writtenWhenAnswered = upload.Written;
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException(
                $"No answer after {Patience.TotalSeconds} s to an upload past the limit while the client held back all but its first 3 MB: the limit is not enforced as the body arrives.");
        }
        finally
        {
            answered.TrySetResult();
        }

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.Status);
        KnowledgeTestBed.AssertError(answer.Body, "request_too_large");
        Assert.Equal(3 * Megabyte, writtenWhenAnswered);
        Assert.Equal(0, _relay.UploadBytesReceived);
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Empty(await _bed.RowsAsync());
        Assert.Equal(available, await _bed.AvailableAsync());
    }

    /// <summary>
    /// The upload's one file reached RAGFlow byte for byte and is recorded as an upload of its size, its parse held for
    /// until RAGFlow is done and then charged once, from that hold.
    /// </summary>
    private async Task AssertAddedWholeAsync(byte[] document, HttpStatusCode status, JsonObject body, long availableBefore)
    {
        Assert.Equal(HttpStatusCode.Created, status);
        var received = Assert.Single(_relay.Files);
        Assert.Equal("handbook.txt", received.FileName);
        Assert.True(document.AsSpan().SequenceEqual(received.Content), $"RAGFlow received {received.Content.Length} bytes that differ from the {document.Length} sent.");
        // Sent with its length, which the RAGFlow client's attempt timeout grows with.
        Assert.Equal(_relay.UploadBytesReceived, Assert.Single(_relay.DeclaredUploadLengths));
        var shown = Assert.Single(body["data"]!.AsArray())!;
        Assert.Equal(("handbook.txt", (long)document.Length), (shown["name"]!.GetValue<string>(), shown["size_bytes"]!.GetValue<long>()));

        var row = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((DocumentSource.Upload, (long)document.Length), (row.Source, row.SizeBytes));
        Assert.NotNull(row.CreditReservationId);
        var held = availableBefore - await _bed.AvailableAsync();
        Assert.True(held > 0, "The parse of the uploaded document holds no credits.");
        Assert.Equal(0, await _bed.RagChargesAsync());

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Equal(held, Assert.Single(await _bed.RowsAsync()).CreditsCharged);
        Assert.Equal(availableBefore - held, await _bed.AvailableAsync());
    }
}
