using System.Text.Json;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Ragflow;
using CmpWaldurAdapter.Ragflow.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Refit;

namespace Microsoft.Extensions.DependencyInjection;

public static class RagflowServiceCollectionExtensions
{
    /// <summary>
    /// JSON as RAGFlow speaks it. Nulls are never sent: RAGFlow's request models are strict and reject null
    /// enums and unknown fields. Similarities can be NaN.
    /// </summary>
    public static readonly JsonSerializerOptions RagflowJson = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Registers <see cref="IRagflowApi"/> with the service account's key, envelope errors and exactly one resilience pipeline.</summary>
    public static IServiceCollection AddRagflowClient(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RagflowOptions>()
            .Bind(configuration.GetSection(RagflowOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddTransient<RagflowAuthHandler>();
        services.AddTransient<RagflowEnvelopeHandler>();

        var client = services.AddRefitGeneratedClient<IRagflowApi>(new RefitSettings(new SystemTextJsonContentSerializer(RagflowJson)))
            .ConfigureHttpClient((sp, http) =>
            {
                http.BaseAddress = sp.GetRequiredService<IOptions<RagflowOptions>>().Value.BaseUrl;
                // The resilience pipeline owns timeouts.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .AddHttpMessageHandler<RagflowAuthHandler>();
        // Besides 5xx and network failures, the envelope's transient codes (100, the 102 catch-alls) are retried.
        client.AddUpstreamResilience<RagflowOptions>(
            retryPost: null,
            alsoTransient: failure => failure is RagflowException { IsTransient: true },
            sendTime: (options, request) => UploadTime(request, options.UploadMinBytesPerSecond));

        // Inside the pipeline, so its retry sees envelope errors as exceptions.
        client.AddHttpMessageHandler<RagflowEnvelopeHandler>();
        return services;
    }

    /// <summary>
    /// Time to send an upload at <c>Ragflow:UploadMinBytesPerSecond</c>, from its Content-Length: known because every
    /// uploaded file is read from a seekable stream (a form file, a buffer).
    /// </summary>
    internal static TimeSpan UploadTime(HttpRequestMessage request, int minBytesPerSecond) =>
        request.Method == HttpMethod.Post
        && request.RequestUri?.AbsolutePath.EndsWith("/documents", StringComparison.Ordinal) == true
        && request.Content?.Headers.ContentLength is { } length
            ? TimeSpan.FromSeconds((double)length / minBytesPerSecond)
            : TimeSpan.Zero;
}
