using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Knowledge.Documents;

namespace CmpWaldurAdapter.UnitTests.Knowledge;

public sealed class KnowledgeRulesTests
{
    [Theory]
    [InlineData("UNSTART", true)]
    [InlineData("FAIL", true)]
    [InlineData("CANCEL", true)]
    [InlineData("DONE", false)]
    [InlineData("RUNNING", false)]
    [InlineData(null, false)]
    public void Only_documents_never_parsed_failed_or_cancelled_may_be_sent_to_parse(string? run, bool mayParse) =>
        Assert.Equal(mayParse, ParseStates.MayParse(run));

    [Theory]
    [InlineData("UNSTART", "UNSTART")]
    [InlineData("RUNNING", "RUNNING")]
    [InlineData("CANCEL", "CANCEL")]
    [InlineData("DONE", "DONE")]
    [InlineData("FAIL", "FAIL")]
    // The digits RAGFlow stores the states as, which some of its answers carry unmapped.
    [InlineData("0", "UNSTART")]
    [InlineData("1", "RUNNING")]
    [InlineData("2", "CANCEL")]
    [InlineData("3", "DONE")]
    [InlineData("4", "FAIL")]
    // SCHEDULE (queued, which v0.27 passes through unnamed): followed as the parse it will be, without a warning each poll.
    [InlineData("5", "RUNNING")]
    [InlineData("SCHEDULE", "RUNNING")]
    // No state: never parsed.
    [InlineData(null, "UNSTART")]
    [InlineData("", "UNSTART")]
    public void Ragflows_run_states_become_the_documents_status(string? run, string status)
    {
        Assert.Equal(status, ParseStates.FromRagflow(run));
        Assert.True(ParseStates.IsKnown(run));
    }

    [Theory]
    [InlineData("PAUSED")]
    [InlineData("-1")]
    // Spellings RAGFlow never sends: not guessed at (a guessed DONE would be charged).
    [InlineData("done")]
    [InlineData(" DONE ")]
    [InlineData("Fail")]
    [InlineData("unstart")]
    [InlineData(" ")]
    public void An_unknown_run_state_is_a_parse_still_running_never_charged_failed_or_sent_to_parse_again(string run)
    {
        var status = ParseStates.FromRagflow(run);

        Assert.Equal(ParseStates.Running, status);
        Assert.False(ParseStates.IsKnown(run));
        Assert.False(ParseStates.MayParse(status));
    }

    [Fact]
    public void A_failure_reason_is_the_last_line_of_ragflows_progress_log()
    {
        const string log = "10:00:01 Task has been received.\n10:00:02 Page(1~12): OCR started\n\n10:00:09 [ERROR]Embedding model rate limit exceeded\n";

        Assert.Equal("10:00:09 [ERROR]Embedding model rate limit exceeded", ParseMonitor.FailureReason(log));
        Assert.Equal("Parsing failed in the knowledge base without a reason.", ParseMonitor.FailureReason("  \n"));
        Assert.Equal("Parsing failed in the knowledge base without a reason.", ParseMonitor.FailureReason(null));
        Assert.Equal(1000, ParseMonitor.FailureReason(new string('x', 5000)).Length);
    }

    [Theory]
    [InlineData("10:00:09 Page(1~12): [ERROR]KeyError('kb_7f3c9a0e1b2d4c5e8f9a0b1c2d3e4f50')")]
    [InlineData("10:00:09 [ERROR]Internal server error while chunking: <minio.error.S3Error object at 0x7f1e2c3d4b50>")]
    [InlineData("10:00:09 [ERROR]elasticsearch.exceptions.ConnectionError: Connection refused")]
    public void A_failure_reason_that_reads_like_an_exception_is_not_shown_to_buyers(string line)
    {
        Assert.Equal("Parsing failed in the knowledge base; the operator's log has the reason.", ParseMonitor.FailureReason("10:00:01 Task has been received.\n" + line));
    }

    [Fact]
    public void A_failure_reason_names_no_ragflow_id()
    {
        Assert.Equal("10:00:09 [ERROR]Document … has no chunks", ParseMonitor.FailureReason("10:00:09 [ERROR]Document 7f3c9a0e1b2d4c5e8f9a0b1c2d3e4f50 has no chunks"));
    }

    [Fact]
    public void The_charge_of_a_document_is_keyed_by_its_ragflow_id() =>
        Assert.Equal("doc:97a5f1c2759811efaa500242ac120004", ParseMonitor.ChargeRequestId("97a5f1c2759811efaa500242ac120004"));

    [Theory]
    [InlineData("report.pdf", "report.pdf")]
    [InlineData("C:\\Users\\me\\Q3 report.docx", "Q3 report.docx")]
    [InlineData("../../etc/passwd.txt", "passwd.txt")]
    [InlineData("a\"b\r\n.txt", "ab.txt")]
    [InlineData(".txt", "document.txt")]
    [InlineData("Отчёт 2026.md", "Отчёт 2026.md")]
    public void Uploaded_file_names_keep_only_a_safe_base_name(string raw, string expected) =>
        Assert.Equal(expected, KnowledgeEndpoints.CleanFileName(raw));

    [Fact]
    public void A_long_file_name_is_shortened_and_keeps_its_extension()
    {
        var name = KnowledgeEndpoints.CleanFileName(new string('a', 300) + ".xlsx");

        Assert.Equal(KnowledgeEndpoints.MaxFileNameBytes, name.Length);
        Assert.EndsWith(".xlsx", name, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("报", 100)] // 3 UTF-8 bytes each: 300 bytes, over RAGFlow's 255
    [InlineData("😀", 70)] // a surrogate pair, 4 UTF-8 bytes each
    [InlineData("é", 200)] // 2 UTF-8 bytes each: 200 characters, 400 bytes
    public void A_file_name_too_long_in_utf8_bytes_is_shortened_by_whole_characters_and_keeps_its_extension(string character, int count)
    {
        var name = KnowledgeEndpoints.CleanFileName(string.Concat(Enumerable.Repeat(character, count)) + ".pdf");

        var bytes = System.Text.Encoding.UTF8.GetByteCount(name);
        Assert.InRange(bytes, KnowledgeEndpoints.MaxFileNameBytes - 4, KnowledgeEndpoints.MaxFileNameBytes);
        Assert.EndsWith(".pdf", name, StringComparison.Ordinal);
        Assert.Equal(string.Concat(Enumerable.Repeat(character, (name.Length - 4) / character.Length)), name[..^4]);
    }
}
