using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Every 429 of the API carries <c>Retry-After</c> (<see cref="ApiErrors.TooManyRequests"/>); the document says so, for
/// clients that wait as told instead of guessing a back-off.
/// </summary>
public static class RetryAfterDocumentation
{
    public static OpenApiOptions AddRetryAfterDocumentation(this OpenApiOptions options) =>
        options.AddOperationTransformer((operation, _, _) =>
        {
            if (operation.Responses?.TryGetValue("429", out var tooMany) == true && tooMany is OpenApiResponse response)
            {
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers["Retry-After"] = new OpenApiHeader
                {
                    Description = "Whole seconds to wait before retrying (at least 1).",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1" },
                };
            }

            return Task.CompletedTask;
        });
}
