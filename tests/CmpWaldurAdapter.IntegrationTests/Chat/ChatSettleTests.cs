using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A plain answer goes out once its price is held; its charge is written while the client reads it. The
/// ledger's own settle sits behind a gate here, so a test decides when (and whether) it happens.
/// </summary>
public sealed class ChatSettleTests : IAsyncLifetime
{
    private readonly SettleGate _gate = new();
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(
        (_, _) => { },
        services => services.Replace(ServiceDescriptor.Singleton<IChatCredits>(sp => new GatedChatCredits(ActivatorUtilities.CreateInstance<LedgerChatCredits>(sp), _gate))));

    public async Task DisposeAsync()
    {
        _gate.Open();
        await _bed.DisposeAsync();
    }

    private AnswerSettlements Settlements => _bed.Services.GetRequiredService<AnswerSettlements>();

    [Fact]
    public async Task A_plain_answer_reaches_the_client_while_its_charge_is_written_and_is_charged_once_after()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages":[{"role":"user","content":"Where is my parcel?"}]}""")).WaitAsync(TimeSpan.FromSeconds(10));

        // The whole answer is here, its usage naming the price, while the settle still waits at the gate.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("echo: Where is my parcel?", body["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(2, body["usage"]!["credits_charged"]!.GetValue<long>());
        await _gate.Reached.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(Settlements.WhenSettledAsync().IsCompleted);
        var held = await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(me.Customer);
        Assert.Equal((10L, 2L, 8L), (held.Balance, held.Reserved, held.Available));

        _gate.Open();
        await Settlements.WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_pending_settle_holds_back_neither_the_next_request_on_the_connection_nor_its_answer()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);

        // One client, one keep-alive connection: the second request is read only once the first request has ended.
        for (var i = 0; i < 2; i++)
        {
            using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Where is my parcel?"}""")).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.False(Settlements.WhenSettledAsync().IsCompleted);
        _gate.Open();
        await Settlements.WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new LedgerState(6, 0, 2, 4), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Stopping_the_adapter_waits_for_the_settles_of_answers_already_sent()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using (var http = _bed.Http(me.Key))
        {
            using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Where is my parcel?"}""")).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var stopping = _bed.Server.App.StopAsync();
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.False(stopping.IsCompleted);

        _gate.Open();
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task An_answer_whose_charge_cannot_be_written_stays_answered_and_its_hold_expires_uncharged()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);
        _gate.Fail(new InvalidOperationException("the database went away"));

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Where is my parcel?"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("echo: Where is my parcel?", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await Settlements.WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains(_bed.Server.Logs.Lines, line => line.Contains("could not be settled", StringComparison.Ordinal));
        Assert.Equal(new LedgerState(10, 2, 0, 0), await _bed.LedgerAsync(me.Customer));

        // Free, never charged twice: the sweeper gives the hold back once it expires.
        var expired = new TestClock(DateTimeOffset.UtcNow + _bed.Services.GetRequiredService<IOptions<CreditsOptions>>().Value.ReservationTimeout + TimeSpan.FromSeconds(1));
        var sweeper = ActivatorUtilities.CreateInstance<CreditLedger>(_bed.Services, (TimeProvider)expired);
        Assert.Equal(1, await sweeper.ReleaseExpiredAsync());
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_settle_the_database_refuses_for_the_moment_is_tried_again_and_charged_once()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);
        _gate.Open();
        _gate.Fail(new Npgsql.NpgsqlException("Exception while reading from stream", new IOException("Connection reset by peer")), times: 2);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Where is my parcel?"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await Settlements.WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(2, _bed.Server.Logs.Lines.Count(line => line.Contains("failed for the moment", StringComparison.Ordinal)));
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_stream_whose_settle_the_database_refuses_for_the_moment_ends_whole_and_is_charged_once_the_database_answers()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);
        _gate.Open();
        _gate.Fail(new TimeoutException("Timeout during reading attempt"), times: 1);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"stream":true,"stream_options":{"include_usage":true},"message":"Where is my parcel?"}"""));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        Assert.Contains("\"credits_charged\":2", body, StringComparison.Ordinal);
        await Settlements.WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_failed_run_releases_its_hold_before_the_error_is_sent()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.Fail("POST", "/api/v1/run/.*", 500, times: 10);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Where is my parcel?"}"""));

        Assert.True(response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable, response.StatusCode.ToString());
        Assert.True(Settlements.WhenSettledAsync().IsCompleted);
        Assert.False(_gate.Reached.IsCompleted);
        var balance = await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(me.Customer);
        Assert.Equal((10L, 0L), (balance.Balance, balance.Reserved));
    }
}
