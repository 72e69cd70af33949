using System.Globalization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// A second body of one status in another content type (a completion as JSON, or streamed as server-sent events).
/// <c>Produces</c> keeps one type per status, so a second call would replace the first in the API document.
/// </summary>
public sealed record AlternativeResponseDocumentation(int StatusCode, Type BodyType, string ContentType);

public static class AlternativeResponseDocumentationExtensions
{
    public static RouteHandlerBuilder AlsoProduces<TBody>(this RouteHandlerBuilder builder, int statusCode, string contentType) =>
        builder.WithMetadata(new AlternativeResponseDocumentation(statusCode, typeof(TBody), contentType));

    public static OpenApiOptions AddAlternativeResponseDocumentation(this OpenApiOptions options) =>
        options.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            foreach (var alternative in context.Description.ActionDescriptor.EndpointMetadata.OfType<AlternativeResponseDocumentation>())
            {
                var status = alternative.StatusCode.ToString(CultureInfo.InvariantCulture);
                if (operation.Responses?.TryGetValue(status, out var declared) != true || declared is not OpenApiResponse response)
                {
                    throw new InvalidOperationException($"{context.Description.RelativePath}: an alternative body of {status} needs the status declared with Produces first.");
                }

                response.Content ??= new Dictionary<string, OpenApiMediaType>();
                response.Content[alternative.ContentType] = new OpenApiMediaType
                {
                    Schema = await context.GetOrCreateSchemaAsync(alternative.BodyType, null, cancellationToken),
                };
            }
        });
}
