using System.Net;
using System.Text;
using CmpWaldurAdapter.Ragflow.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Polly.Timeout;
using Refit;

namespace CmpWaldurAdapter.UnitTests.Ragflow;

/// <summary>
/// An upload's attempt is allowed <c>Ragflow:AttemptTimeout</c> plus its size at
/// <c>Ragflow:UploadMinBytesPerSecond</c> (1 MB/s unless set): a large file to a busy RAGFlow outlasts a
/// quick call's timeout, and one cut after RAGFlow stored it leaves an unrecorded copy. Other calls keep the attempt
/// timeout. Through the real client and pipeline, with a stand-in RAGFlow that answers late (attempt timeout 0.5 s); the
/// timeouts applied are read from the timeout's exception, not measured, and the delays leave seconds of margin for a
/// busy machine's late timers.
/// </summary>
public sealed class RagflowUploadTimeoutTests : IDisposable
{
    private const int FourMegabytes = 4_000_000;

    private readonly SlowRagflow _ragflow = new();

    private ServiceProvider _provider;

    public RagflowUploadTimeoutTests() => _provider = Build(minBytesPerSecond: null);

    private IRagflowApi Ragflow => _provider.GetRequiredService<IRagflowApi>();

    private ServiceProvider Build(int? minBytesPerSecond)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Ragflow:BaseUrl"] = "http://ragflow.test/",
            ["Ragflow:ApiKey"] = "ragflow-test",
            ["Ragflow:AttemptTimeout"] = "00:00:00.500",
            // Reads may be retried once: uploads must still be sent once.
            ["Ragflow:RetryAttempts"] = "1",
            ["Ragflow:RetryDelay"] = "00:00:00.100",
        };
        if (minBytesPerSecond is { } rate)
        {
            settings["Ragflow:UploadMinBytesPerSecond"] = rate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection().AddLogging().AddRagflowClient(configuration);
        services.AddSingleton<IHttpMessageHandlerBuilderFilter>(_ragflow);
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task A_four_megabyte_upload_slower_than_the_attempt_timeout_is_answered()
    {
        var answer = await Ragflow.UploadDocumentsAsync("dataset-1", [File(FourMegabytes)], CancellationToken.None);

        Assert.Equal("document-1", Assert.Single(answer.Data!).Id);
        Assert.Equal(1, _ragflow.Requests);
    }

    [Fact]
    public async Task A_small_read_slower_than_the_attempt_timeout_still_times_out_after_the_attempt_timeout()
    {
        _ragflow.Delay = TimeSpan.FromSeconds(5);

        var failure = await Assert.ThrowsAsync<ApiRequestException>(() => Ragflow.ListDatasetsAsync(1, 10, CancellationToken.None));

        Assert.Equal(TimeSpan.FromSeconds(0.5), Assert.IsType<TimeoutRejectedException>(failure.InnerException).Timeout);
        Assert.Equal(2, _ragflow.Requests);
    }

    [Fact]
    public async Task An_upload_that_is_never_answered_is_cut_after_the_attempt_timeout_plus_its_size_at_the_minimum_rate_and_not_sent_again()
    {
        _ragflow.Delay = Timeout.InfiniteTimeSpan;

        var failure = await Assert.ThrowsAsync<ApiRequestException>(() => Ragflow.UploadDocumentsAsync("dataset-1", [File(200_000)], CancellationToken.None));

        // The multipart body is the file and its part's headers, its length known before it is sent.
        var length = _ragflow.Last!.Content!.Headers.ContentLength!.Value;
        Assert.InRange(length, 200_000, 201_000);
        var expected = TimeSpan.FromSeconds(0.5) + TimeSpan.FromSeconds(length / 1_000_000.0);
        Assert.Equal(expected, Assert.IsType<TimeoutRejectedException>(failure.InnerException).Timeout);
        Assert.Equal(1, _ragflow.Requests);
    }

    [Fact]
    public async Task The_configured_minimum_upload_rate_is_the_one_applied()
    {
        _provider.Dispose();
        _provider = Build(minBytesPerSecond: 250_000);
        _ragflow.Delay = Timeout.InfiniteTimeSpan;

        var failure = await Assert.ThrowsAsync<ApiRequestException>(() => Ragflow.UploadDocumentsAsync("dataset-1", [File(200_000)], CancellationToken.None));

        // A quarter of the default rate: four times the default's extra time.
        var length = _ragflow.Last!.Content!.Headers.ContentLength!.Value;
        Assert.Equal(TimeSpan.FromSeconds(0.5) + TimeSpan.FromSeconds(length / 250_000.0), Assert.IsType<TimeoutRejectedException>(failure.InnerException).Timeout);
        Assert.Equal(1, _ragflow.Requests);
    }

    public void Dispose() => _provider.Dispose();

    private static StreamPart File(int bytes) => new(new MemoryStream(new byte[bytes]), "big.pdf", "application/pdf");

    /// <summary>Answers every request after <see cref="Delay"/>, unless the client gave up first.</summary>
    private sealed class SlowRagflow : HttpMessageHandler, IHttpMessageHandlerBuilderFilter
    {
        private int _requests;

        public TimeSpan Delay { get; set; } = TimeSpan.FromSeconds(1.5);

        public int Requests => _requests;

        public HttpRequestMessage? Last { get; private set; }

        public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
        {
            next(builder);
            builder.PrimaryHandler = this;
        };

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _requests);
            Last = request;
            if (request.Content is { } content)
            {
                await content.ReadAsByteArrayAsync(cancellationToken);
            }

            await Task.Delay(Delay, cancellationToken);
            var body = request.Method == HttpMethod.Post
                ? """{"code":0,"data":[{"id":"document-1","name":"big.pdf"}]}"""
                : """{"code":0,"data":[]}""";
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        }
    }
}
