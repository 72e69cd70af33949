using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Where a page of a newest-first list starts: just older than the item <see cref="Id"/> (OpenAI's <c>after</c>),
/// or, for the console's Newer link, just newer than it, or, for a link to the item itself (<see cref="Including"/>),
/// at it and older.
/// </summary>
public readonly record struct PageCursor(Guid Id, bool Newer = false, bool Including = false);

/// <summary>A page of a newest-first list; <see cref="HasMore"/>: more items lie beyond it in the direction paged.</summary>
public sealed record ListPage<T>(IReadOnlyList<T> Data, bool HasMore);

/// <summary>
/// The query of a list endpoint paged as OpenAI's are: <c>limit</c> (1 to 100) and <c>after</c>, the id of the
/// previous page's last item. Ids are a prefix and the row's id in 32 hex digits.
/// </summary>
public sealed record ListQuery(int Limit, PageCursor? After)
{
    /// <summary>Also the default: before paging, these lists answered their 100 newest items, so a client that never pages sees the same.</summary>
    public const int MaxLimit = 100;

    public static string IdOf(string prefix, Guid id) => prefix + id.ToString("N");

    public static bool TryParseId(string? text, string prefix, out Guid id)
    {
        id = Guid.Empty;
        return text is not null && text.StartsWith(prefix, StringComparison.Ordinal) && Guid.TryParseExact(text.AsSpan(prefix.Length), "N", out id);
    }

    /// <summary>Reads <c>limit</c> and <c>after</c>; a bad one is answered with a 400 that names it.</summary>
    public static (ListQuery? Query, IResult? Error) Read(HttpRequest request, string idPrefix)
    {
        var limit = MaxLimit;
        if (request.Query.TryGetValue("limit", out var limits)
            && !(limits.Count == 1 && int.TryParse(limits[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) && limit is >= 1 and <= MaxLimit))
        {
            return (null, ApiErrors.InvalidRequest($"limit must be an integer from 1 to {MaxLimit}.", "limit", "invalid_limit"));
        }

        PageCursor? after = null;
        if (request.Query.TryGetValue("after", out var afters))
        {
            if (afters.Count != 1 || !TryParseId(afters[0], idPrefix, out var id))
            {
                return (null, InvalidCursor());
            }

            after = new PageCursor(id);
        }

        return (new ListQuery(limit, after), null);
    }

    /// <summary>
    /// The one answer for a cursor that is malformed, unknown, or another subscription's item: whether such an
    /// item exists elsewhere is never told.
    /// </summary>
    public static IResult InvalidCursor() =>
        ApiErrors.InvalidRequest("after must be the id of an item of this list, such as last_id of the previous page.", "after", "invalid_cursor");
}

/// <summary>Marks an endpoint that reads <see cref="ListQuery"/> from the query string (it binds no parameter, so the API document is told here).</summary>
public sealed record ListQueryDocumentation;

public static class ListQueryDocumentationExtensions
{
    public static RouteHandlerBuilder DocumentsListQuery(this RouteHandlerBuilder builder) => builder.WithMetadata(new ListQueryDocumentation());

    public static OpenApiOptions AddListQueryDocumentation(this OpenApiOptions options) =>
        options.AddOperationTransformer((operation, context, _) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<ListQueryDocumentation>().Any())
            {
                operation.Parameters ??= [];
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = "limit",
                    In = ParameterLocation.Query,
                    Description = $"How many items to return, 1 to {ListQuery.MaxLimit} (default {ListQuery.MaxLimit}).",
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.Integer,
                        Minimum = "1",
                        Maximum = ListQuery.MaxLimit.ToString(CultureInfo.InvariantCulture),
                        Default = JsonValue.Create(ListQuery.MaxLimit),
                    },
                });
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = "after",
                    In = ParameterLocation.Query,
                    Description = "The id of the last item of the previous page (its last_id): the page starts with the next older item.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                });
            }

            return Task.CompletedTask;
        });
}
