using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Describes an endpoint's JSON request body in the API document without <c>Accepts</c> metadata: that
/// makes routing answer a wrong content type with a bare 415, while our endpoints answer every bad
/// request themselves, in the API's error shape.
/// </summary>
public sealed record RequestBodyDocumentation(Type BodyType, string ContentType = "application/json");

public static class RequestBodyDocumentationExtensions
{
    public static RouteHandlerBuilder DocumentsBody<TBody>(this RouteHandlerBuilder builder, string contentType = "application/json") =>
        builder.WithMetadata(new RequestBodyDocumentation(typeof(TBody), contentType));

    public static OpenApiOptions AddRequestBodyDocumentation(this OpenApiOptions options) =>
        options.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<RequestBodyDocumentation>().FirstOrDefault() is { } body)
            {
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        [body.ContentType] = new() { Schema = await context.GetOrCreateSchemaAsync(body.BodyType, null, cancellationToken) },
                    },
                };
            }
        });
}
